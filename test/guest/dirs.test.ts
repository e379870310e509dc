/**
 * Black-box tests of READDIR, RENAME and SYMLINK (docs/agent-protocol.md, "readdir, rename and symlink") against the
 * real hf-agent over --unix, in a temp dir on the host.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { lstatSync, mkdirSync, readFileSync, readlinkSync, statSync, symlinkSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { decodeFields, encodeFields } from "../../src/agent/codec.js";
import { decodeEntries, type DirEntry } from "../../src/agent/dirents.js";
import { FLAG_END, MsgType, ReaddirFlags, RenameFlags, Tag } from "../../src/agent/protocol.js";
import { Agent, buildAgent, cleanupAll, type Conn, Errno, expectErrno, asError, tempDir } from "./harness.js";

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

const ELOOP = 40;
const EINVAL = 22;

/** Every DIRENTS frame of one READDIR, until END (or the ERROR that ends it). */
async function readdir(path: string, flags = 0): Promise<{ entries: DirEntry[]; frames: number }> {
  const id = conn.allocId();
  conn.sendFields(MsgType.READDIR, 0, id, flags ? [[Tag.PATH, path], [Tag.FLAGS, { u32: flags }]] : [[Tag.PATH, path]]);
  const entries: DirEntry[] = [];
  for (let frames = 1; ; frames++) {
    const f = await conn.next(id);
    if (f.type === MsgType.ERROR) throw asError(f);
    assert.equal(f.type, MsgType.DIRENTS);
    assert.ok(f.payload.length <= 64 * 1024 + 4096 + 64, `a DIRENTS frame of ${f.payload.length} bytes`);
    entries.push(...decodeEntries(f.payload));
    if (f.flags & FLAG_END) return { entries, frames };
  }
}

function rename(from: string, to: string, flags = 0) {
  const fields: Array<[number, string | { u32: number }]> = [[Tag.PATH, from], [Tag.NEW_PATH, to]];
  if (flags) fields.push([Tag.FLAGS, { u32: flags }]);
  return conn.request(MsgType.RENAME, fields);
}

test("READDIR lists name, type, size, mode, uid, gid and mtime of each entry, lstat'ed, without . and ..", async () => {
  const d = join(dir, "list");
  mkdirSync(join(d, "sub"), { recursive: true });
  writeFileSync(join(d, "a.txt"), "hello");
  symlinkSync("/etc/passwd", join(d, "link"));
  symlinkSync("sub", join(d, "dirlink"));
  execFileSync("mkfifo", [join(d, "fifo")]);
  const { entries } = await readdir(d);
  const byName = new Map(entries.map((e) => [e.name, e]));
  assert.deepEqual([...byName.keys()].sort(), ["a.txt", "dirlink", "fifo", "link", "sub"]);
  const a = byName.get("a.txt")!;
  const st = statSync(join(d, "a.txt"));
  assert.equal(a.type, "file");
  assert.equal(a.size, 5);
  assert.equal(a.mode, st.mode);
  assert.equal(a.uid, st.uid);
  assert.equal(a.mtime.getTime(), Math.floor(st.mtimeMs));
  assert.equal(byName.get("sub")!.type, "directory");
  // Symlinks are not followed: their own type, and the target as stored.
  assert.equal(byName.get("link")!.type, "symlink");
  assert.equal(byName.get("link")!.target, "/etc/passwd");
  assert.equal(byName.get("link")!.size, lstatSync(join(d, "link")).size);
  assert.equal(byName.get("dirlink")!.type, "symlink");
  assert.equal(byName.get("dirlink")!.target, "sub");
  assert.equal(byName.get("fifo")!.type, "other");
  assert.equal(byName.get("a.txt")!.target, undefined);
});

test("a directory of 5000 entries arrives complete in several bounded DIRENTS frames", async () => {
  const d = join(dir, "many");
  mkdirSync(d);
  const names = Array.from({ length: 5000 }, (_, i) => `file-with-a-longish-name-${String(i).padStart(5, "0")}`);
  for (const n of names) writeFileSync(join(d, n), "");
  const { entries, frames } = await readdir(d);
  assert.deepEqual(entries.map((e) => e.name).sort(), names);
  assert.ok(frames >= 3, `${frames} frames`);
  // The connection still answers at once afterwards (the listing did not wedge the loop).
  const pong = await conn.request(MsgType.PING, []);
  assert.equal(pong.type, MsgType.PONG);
});

test("an empty directory is one empty DIRENTS frame with END", async () => {
  const d = join(dir, "empty");
  mkdirSync(d);
  const { entries, frames } = await readdir(d);
  assert.deepEqual(entries, []);
  assert.equal(frames, 1);
});

test("READDIR errors: missing, a file, NOFOLLOW on a symlink, unknown FLAGS, id 0", async () => {
  await expectErrno(readdir(join(dir, "nope")), Errno.ENOENT);
  writeFileSync(join(dir, "plain"), "x");
  await expectErrno(readdir(join(dir, "plain")), Errno.ENOTDIR);
  const d = join(dir, "real");
  mkdirSync(d);
  symlinkSync(d, join(dir, "via-link"));
  // Without NOFOLLOW PATH is resolved like open(2) (`ls dir/`); with it a symlink is refused.
  assert.deepEqual((await readdir(join(dir, "via-link"))).entries, []);
  await expectErrno(readdir(join(dir, "via-link"), ReaddirFlags.NOFOLLOW), ELOOP);
  await expectErrno(readdir(d, 2), EINVAL);
  conn.sendFields(MsgType.READDIR, 0, 0, [[Tag.PATH, d]]);
  const f = await conn.next(0);
  assert.equal(f.type, MsgType.ERROR);
  assert.equal(decodeFields(f.payload).u32(Tag.ERRNO), EINVAL);
});

test("CANCEL ends a READDIR with ECANCELED, and the id is free again", async () => {
  const d = join(dir, "many");
  const id = conn.allocId();
  conn.sendFields(MsgType.READDIR, 0, id, [[Tag.PATH, d]]);
  conn.send(MsgType.CANCEL, 0, id);
  for (;;) {
    const f = await conn.next(id);
    if (f.type === MsgType.DIRENTS) {
      // Frames queued before the CANCEL may arrive; the listing may even have finished first.
      if (f.flags & FLAG_END) break;
      continue;
    }
    assert.equal(f.type, MsgType.ERROR);
    assert.equal(decodeFields(f.payload).u32(Tag.ERRNO), 125);
    break;
  }
  conn.send(MsgType.READDIR, 0, id, encodeFields([[Tag.PATH, join(dir, "empty")]]));
  const again = await conn.next(id);
  assert.equal(again.type, MsgType.DIRENTS);
});

test("RENAME moves a file and a directory; NOREPLACE refuses an existing target", async () => {
  writeFileSync(join(dir, "r1"), "one");
  await rename(join(dir, "r1"), join(dir, "r2"));
  assert.equal(existsSync(join(dir, "r1")), false);
  assert.equal(readFileSync(join(dir, "r2"), "utf8"), "one");

  writeFileSync(join(dir, "r3"), "three");
  await expectErrno(rename(join(dir, "r3"), join(dir, "r2"), RenameFlags.NOREPLACE), Errno.EEXIST);
  assert.equal(readFileSync(join(dir, "r2"), "utf8"), "one");
  // Without it the target is replaced, as rename(2) does.
  await rename(join(dir, "r3"), join(dir, "r2"));
  assert.equal(readFileSync(join(dir, "r2"), "utf8"), "three");

  mkdirSync(join(dir, "rd/inner"), { recursive: true });
  await rename(join(dir, "rd"), join(dir, "rd2"), RenameFlags.NOREPLACE);
  assert.ok(statSync(join(dir, "rd2/inner")).isDirectory());
});

test("RENAME errors: missing source, missing NEW_PATH, empty NEW_PATH, unknown FLAGS", async () => {
  await expectErrno(rename(join(dir, "absent"), join(dir, "x")), Errno.ENOENT);
  await expectErrno(conn.request(MsgType.RENAME, [[Tag.PATH, join(dir, "r2")]]), EINVAL);
  await expectErrno(rename(join(dir, "r2"), ""), Errno.ENOENT);
  await expectErrno(rename(join(dir, "r2"), join(dir, "r9"), 4), EINVAL);
  assert.ok(existsSync(join(dir, "r2")));
});

test("SYMLINK creates a link with the target as given; an existing path is EEXIST; TARGET is required", async () => {
  await conn.request(MsgType.SYMLINK, [[Tag.PATH, join(dir, "sl")], [Tag.TARGET, "../some/where"]]);
  assert.equal(readlinkSync(join(dir, "sl")), "../some/where");
  await expectErrno(conn.request(MsgType.SYMLINK, [[Tag.PATH, join(dir, "sl")], [Tag.TARGET, "x"]]), Errno.EEXIST);
  await expectErrno(conn.request(MsgType.SYMLINK, [[Tag.PATH, join(dir, "sl2")]]), EINVAL);
  await expectErrno(conn.request(MsgType.SYMLINK, [[Tag.PATH, join(dir, "sl2")], [Tag.TARGET, "x"], [Tag.FLAGS, { u32: 1 }]]), EINVAL);
  await expectErrno(conn.request(MsgType.SYMLINK, [[Tag.PATH, join(dir, "no/such/dir/sl")], [Tag.TARGET, "x"]]), Errno.ENOENT);
});
