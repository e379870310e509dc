/**
 * Black-box tests of the file operations (docs/agent-protocol.md, "files") against the real
 * hf-agent over --unix, in a temp dir on the host.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { decodeFields, type FieldValue } from "../../src/agent/codec.js";
import { DeleteFlags, FLAG_END, MkdirFlags, MsgType, Tag, WriteFlags } from "../../src/agent/protocol.js";
import { Agent, buildAgent, cleanupAll, type Conn, Errno, expectErrno, tempDir } from "./harness.js";

let agent: Agent;
let conn: Conn;
let dir: string;

before(async () => {
  buildAgent();
  agent = await Agent.start();
  conn = await agent.connect();
  dir = tempDir();
});
after(async () => {
  conn.close();
  await cleanupAll();
});

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");


function stat(path: string) {
  return conn.request(MsgType.STAT, [[Tag.PATH, path]]).then((f) => {
    assert.equal(f.type, MsgType.STAT_RESULT);
    const x = decodeFields(f.payload);
    return { size: x.u64(Tag.SIZE)!, mode: x.u32(Tag.MODE)!, uid: x.u32(Tag.UID)!, gid: x.u32(Tag.GID)!, mtimeNs: x.i64(Tag.MTIME_NS)! };
  });
}

test("20 MiB written then read back byte-identical (sha256), in several DATA frames", async (t) => {
  const data = randomBytes(20 * 1024 * 1024);
  const path = join(dir, "big.bin");
  let t0 = process.hrtime.bigint();
  const size = await conn.writeFile(path, data);
  const writeS = Number(process.hrtime.bigint() - t0) / 1e9;
  assert.equal(size, BigInt(data.length));
  assert.equal(sha256(readFileSync(path)), sha256(data));

  t0 = process.hrtime.bigint();
  const { data: back, frames } = await conn.readFile(path);
  const readS = Number(process.hrtime.bigint() - t0) / 1e9;
  assert.equal(sha256(back), sha256(data));
  assert.ok(frames >= 20, `${frames} DATA frames`);
  t.diagnostic(`write ${(20 / writeS).toFixed(0)} MiB/s, read ${(20 / readS).toFixed(0)} MiB/s (over --unix, node host side)`);
});

test("WRITE replaces atomically through a temp file: no temp files left, MODE applied exactly", async () => {
  const path = join(dir, "atomic.txt");
  writeFileSync(path, "old contents");
  await conn.writeFile(path, Buffer.from("new"), { mode: 0o600 });
  assert.equal(readFileSync(path, "utf8"), "new");
  assert.equal(statSync(path).mode & 0o7777, 0o600);
  await conn.writeFile(join(dir, "default-mode"), Buffer.from("x"));
  assert.equal(statSync(join(dir, "default-mode")).mode & 0o7777, 0o644);
  assert.deepEqual(readdirSync(dir).filter((n) => n.startsWith(".hf-")), []);
});

test("a WRITE carrying END itself creates an empty file; an empty END DATA frame too", async () => {
  const a = join(dir, "empty-a");
  const id = conn.allocId();
  conn.sendFields(MsgType.WRITE, FLAG_END, id, [[Tag.PATH, a]]);
  const f = await conn.next(id);
  assert.equal(f.type, MsgType.OK);
  assert.equal(decodeFields(f.payload).u64(Tag.SIZE), 0n);
  assert.equal(readFileSync(a).length, 0);
  await conn.writeFile(join(dir, "empty-b"), Buffer.alloc(0));
  assert.equal(readFileSync(join(dir, "empty-b")).length, 0);
});

test("MKDIRS creates parents; without it a missing directory is ENOENT", async () => {
  const deep = join(dir, "a/b/c/file.txt");
  await expectErrno(conn.writeFile(deep, Buffer.from("x")), Errno.ENOENT);
  await conn.writeFile(deep, Buffer.from("deep"), { flags: WriteFlags.MKDIRS });
  assert.equal(readFileSync(deep, "utf8"), "deep");
});

test("APPEND appends to an existing file and creates a missing one", async () => {
  const path = join(dir, "log.txt");
  await conn.writeFile(path, Buffer.from("one\n"), { flags: WriteFlags.APPEND, mode: 0o640 });
  await conn.writeFile(path, Buffer.from("two\n"), { flags: WriteFlags.APPEND });
  assert.equal(readFileSync(path, "utf8"), "one\ntwo\n");
  assert.equal(statSync(path).mode & 0o777, 0o640);
});

test("an early ERROR ends the WRITE: later DATA for its id is ignored and the id is free again", async () => {
  const id = conn.allocId();
  conn.sendFields(MsgType.WRITE, 0, id, [[Tag.PATH, join(dir, "missing-dir/x")]]);
  conn.send(MsgType.DATA, 0, id, Buffer.from("ignored"));
  const f = await conn.next(id);
  assert.equal(f.type, MsgType.ERROR);
  assert.equal(decodeFields(f.payload).u32(Tag.ERRNO), Errno.ENOENT);
  conn.send(MsgType.DATA, FLAG_END, id, Buffer.from("ignored too"));
  // Reusing the id for a new operation works and only that operation answers.
  conn.sendFields(MsgType.STAT, 0, id, [[Tag.PATH, dir]]);
  assert.equal((await conn.next(id)).type, MsgType.STAT_RESULT);
  assert.equal(conn.pending(id).length, 0);
});

test("an abandoned upload (connection closed before END) leaves the target untouched and no temp file", async () => {
  const sub = join(dir, "abandon");
  mkdirSync(sub);
  const path = join(sub, "target");
  writeFileSync(path, "original");
  const c = await agent.connect();
  const id = c.allocId();
  c.sendFields(MsgType.WRITE, 0, id, [[Tag.PATH, path]]);
  await c.sendData(MsgType.DATA, id, randomBytes(1024 * 1024), false);
  await c.request(MsgType.PING, []); // the DATA was processed
  assert.equal(readdirSync(sub).length, 2, "temp file exists during the upload");
  c.close();
  for (let i = 0; i < 100 && readdirSync(sub).length > 1; i++) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(readdirSync(sub), ["target"]);
  assert.equal(readFileSync(path, "utf8"), "original");
});

test("READ with OFFSET and LENGTH, of an empty file, and past the end", async () => {
  const path = join(dir, "digits");
  writeFileSync(path, "0123456789");
  assert.equal((await conn.readFile(path, { offset: 3, length: 4 })).data.toString(), "3456");
  assert.equal((await conn.readFile(path, { offset: 8 })).data.toString(), "89");
  assert.equal((await conn.readFile(path, { offset: 50 })).data.length, 0);
  assert.equal((await conn.readFile(path, { length: 0 })).data.length, 0);
  writeFileSync(join(dir, "empty"), "");
  const empty = await conn.readFile(join(dir, "empty"));
  assert.equal(empty.data.length, 0);
  assert.equal(empty.frames, 1);
});

test("READ errors: missing file ENOENT, directory EISDIR, FIFO EINVAL (never blocks the agent)", async () => {
  await expectErrno(conn.readFile(join(dir, "nope")), Errno.ENOENT);
  await expectErrno(conn.readFile(dir), Errno.EISDIR);
  const fifo = join(dir, "fifo");
  execFileSync("mkfifo", [fifo]);
  await expectErrno(conn.readFile(fifo), Errno.EINVAL);
  assert.equal((await conn.request(MsgType.PING, [])).type, MsgType.PONG);
});

test("READ of a procfs file (size 0 in stat) still returns its contents", async () => {
  const { data } = await conn.readFile("/proc/self/status");
  assert.match(data.toString(), /^Name:/);
  // pagemap refuses reads that are not a multiple of 8 bytes; a LENGTH that is not still works.
  assert.equal((await conn.readFile("/proc/self/pagemap", { length: 9 })).data.length, 9);
});

test("a big READ does not starve other operations on the same connection", async () => {
  const path = join(dir, "starve.bin");
  writeFileSync(path, randomBytes(32 * 1024 * 1024));
  const readId = conn.allocId();
  conn.sendFields(MsgType.READ, 0, readId, [[Tag.PATH, path]]);
  const pingId = conn.allocId();
  conn.send(MsgType.PING, 0, pingId, Buffer.from("hi"));
  await conn.next(pingId);
  // The PONG came back while the READ was still streaming.
  let ended = conn.pending(readId).some((f) => f.flags & FLAG_END);
  assert.equal(ended, false, "PONG waited for the whole READ");
  while (!ended) ended = ((await conn.next(readId)).flags & FLAG_END) !== 0;
});

test("concurrent big READs with no other traffic all finish (the agent never sleeps with output to produce)", async () => {
  // Several READs fill the send buffer past OUT_HIGH in one pump; when the flush that follows
  // empties it, nothing is left to POLLOUT for and the agent used to sleep until the next frame.
  const size = 16 * 1024 * 1024;
  const paths = Array.from({ length: 6 }, (_, i) => join(dir, `sparse-${i}.bin`));
  for (const p of paths) execFileSync("truncate", ["-s", String(size), p]);
  const started = Date.now();
  const ids = paths.map((p) => {
    const id = conn.allocId();
    conn.sendFields(MsgType.READ, 0, id, [[Tag.PATH, p]]);
    return id;
  });
  const totals = await Promise.all(ids.map(async (id) => {
    let n = 0;
    for (;;) {
      // A stall is forever; 30 s per frame only bounds how long a failure takes to show.
      const f = await conn.next(id, 30_000);
      assert.equal(f.type, MsgType.DATA);
      n += f.payload.length;
      if (f.flags & FLAG_END) return n;
    }
  }));
  assert.deepEqual(totals, paths.map(() => size));
  assert.ok(Date.now() - started < 60_000);
});

test("STAT reports size, mode, owner and mtime, following symlinks; missing is ENOENT", async () => {
  const path = join(dir, "stat-me");
  writeFileSync(path, "12345", { mode: 0o640 });
  const s = await stat(path);
  const local = statSync(path, { bigint: true });
  assert.equal(s.size, 5n);
  assert.equal(s.mode, Number(local.mode));
  assert.equal(s.mode & 0o170000, 0o100000);
  assert.equal(s.uid, Number(local.uid));
  assert.equal(s.gid, Number(local.gid));
  assert.equal(s.mtimeNs, local.mtimeNs);

  symlinkSync(path, join(dir, "link-to-stat-me"));
  assert.equal((await stat(join(dir, "link-to-stat-me"))).size, 5n);
  assert.equal(((await stat(dir)).mode & 0o170000), 0o040000);
  await expectErrno(stat(join(dir, "missing")), Errno.ENOENT);
});

test("DELETE: a file, a symlink (not its target), an empty dir; a tree only with RECURSIVE", async () => {
  const del = (path: string, flags = 0) => conn.request(MsgType.DELETE, [[Tag.PATH, path], [Tag.FLAGS, { u32: flags }]]);
  const f = join(dir, "del-file");
  writeFileSync(f, "x");
  assert.equal((await del(f)).type, MsgType.OK);
  assert.equal(existsSync(f), false);
  await expectErrno(del(f), Errno.ENOENT);

  const target = join(dir, "del-target");
  writeFileSync(target, "keep");
  symlinkSync(target, join(dir, "del-link"));
  await del(join(dir, "del-link"));
  assert.equal(readFileSync(target, "utf8"), "keep");

  const tree = join(dir, "tree");
  mkdirSync(join(tree, "a/b/c"), { recursive: true });
  writeFileSync(join(tree, "a/b/c/f"), "x");
  writeFileSync(join(tree, "top"), "x");
  symlinkSync("/etc", join(tree, "a/escape"));
  await expectErrno(del(tree), Errno.ENOTEMPTY);
  await del(tree, DeleteFlags.RECURSIVE);
  assert.equal(existsSync(tree), false);
  assert.ok(existsSync("/etc/passwd"), "a symlink inside the tree was not followed");

  mkdirSync(join(dir, "empty-dir"));
  await del(join(dir, "empty-dir"));
  assert.equal(existsSync(join(dir, "empty-dir")), false);
});

test("MKDIR: PARENTS creates the chain and accepts an existing dir; MODE is exact; errors otherwise", async () => {
  const mk = (path: string, flags = 0, mode?: number) => {
    const fields: Array<[number, FieldValue]> = [[Tag.PATH, path], [Tag.FLAGS, { u32: flags }]];
    if (mode !== undefined) fields.push([Tag.MODE, { u32: mode }]);
    return conn.request(MsgType.MKDIR, fields);
  };
  const deep = join(dir, "m/n/o");
  await expectErrno(mk(deep), Errno.ENOENT);
  await mk(deep, MkdirFlags.PARENTS, 0o700);
  assert.ok(statSync(deep).isDirectory());
  assert.equal(statSync(deep).mode & 0o777, 0o700);
  await mk(deep, MkdirFlags.PARENTS);
  await expectErrno(mk(deep), Errno.EEXIST);
  await mk(join(dir, "plain"));
  assert.equal(statSync(join(dir, "plain")).mode & 0o777, 0o755);
  writeFileSync(join(dir, "a-file"), "");
  await expectErrno(mk(join(dir, "a-file/sub"), MkdirFlags.PARENTS), Errno.ENOTDIR);
});

test("file operations without PATH are EINVAL", async () => {
  for (const type of [MsgType.READ, MsgType.WRITE, MsgType.DELETE, MsgType.MKDIR]) {
    await expectErrno(conn.request(type, [], FLAG_END), Errno.EINVAL);
  }
  assert.equal(lstatSync(dir).isDirectory(), true);
});
