/**
 * Black-box tests that blocking file work never holds up the agent's other operations
 * (docs/adr/0007-blocking-file-work-in-worker-threads.md), and of WRITE's FSYNC flag, against the
 * real hf-agent over --unix in temp dirs on the host.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { decodeFields } from "../../src/agent/codec.js";
import { DeleteFlags, MsgType, Tag, WriteFlags } from "../../src/agent/protocol.js";
import { AgentClient } from "../../src/agent/client.js";
import { Agent, buildAgent, cleanupAll, type Conn, connectSocket, Errno, expectErrno, tempDir } from "./harness.js";

let agent: Agent;
let conn: Conn;

before(async () => {
  buildAgent();
  agent = await Agent.start();
  conn = await agent.connect();
});
after(async () => {
  conn.close();
  await cleanupAll();
});

/** A temp dir on tmpfs where there is one: creating 50,000 files on a busy ext4 disk takes a minute. */
function treeParent(): string {
  return tempDir("hf-agent-nonblock-", existsSync("/dev/shm") ? "/dev/shm" : tmpdir());
}

/** Creates `files` empty files under root, 1000 per directory. */
function makeTree(root: string, files: number): void {
  for (let d = 0; d * 1000 < files; d++) {
    const sub = join(root, `d${d}`);
    mkdirSync(sub, { recursive: true });
    for (let i = d * 1000; i < Math.min(files, (d + 1) * 1000); i++) closeSync(openSync(join(sub, `f${i}`), "w"));
  }
}

function sendDelete(c: Conn, path: string): number {
  const id = c.allocId();
  c.sendFields(MsgType.DELETE, 0, id, [[Tag.PATH, path], [Tag.FLAGS, { u32: DeleteFlags.RECURSIVE }]]);
  return id;
}

test("a PING and an EXEC are answered while a recursive DELETE of 50,000 files runs", async (t) => {
  const root = join(treeParent(), "tree");
  makeTree(root, 50_000);
  const order: string[] = [];
  const t0 = performance.now();
  const at: Record<string, number> = {};
  const done = (name: string) => () => {
    order.push(name);
    at[name] = performance.now() - t0;
  };
  // All three leave in one write: an agent that deletes inside its event loop reads the PING and
  // the EXEC only after the whole tree is gone.
  const delId = sendDelete(conn, root);
  const pingId = conn.allocId();
  conn.send(MsgType.PING, 0, pingId, Buffer.from("alive?"));
  const execId = conn.allocId();
  conn.sendFields(MsgType.EXEC, 0, execId, [[Tag.ARG, "true"], [Tag.STDIN, { u8: 0 }]]);

  const del = conn.next(delId, 120_000).then((f) => {
    done("delete")();
    return f;
  });
  const pong = conn.next(pingId, 120_000).then((f) => {
    done("ping")();
    return f;
  });
  const exec = conn.next(execId, 120_000).then(async (f) => {
    assert.equal(f.type, MsgType.EXEC_STARTED);
    const r = await conn.collectExec(execId, decodeFields(f.payload).u32(Tag.PID)!, 120_000);
    done("exec")();
    return r;
  });
  const [delFrame, pongFrame, execResult] = await Promise.all([del, pong, exec]);

  assert.equal(delFrame.type, MsgType.OK);
  assert.equal(existsSync(root), false);
  assert.equal(pongFrame.type, MsgType.PONG);
  assert.equal(pongFrame.payload.toString(), "alive?");
  assert.equal(execResult.exitCode, 0);
  t.diagnostic(`completions: ${order.map((n) => `${n} ${at[n]!.toFixed(0)} ms`).join(", ")}`);
  assert.deepEqual(order.slice(2), ["delete"], `the DELETE must finish last: ${order.join(", ")}`);
});

test("the connection closing while a DELETE runs: the tree is still removed and the agent serves on", async () => {
  const root = join(treeParent(), "tree");
  makeTree(root, 20_000);
  const c = await agent.connect();
  sendDelete(c, root);
  // Closing right away: the DELETE's operation is ended while its work goes on; its answer must
  // then go nowhere (not into a freed connection).
  await new Promise((r) => setTimeout(r, 20));
  c.close();
  await c.closed;
  const deadline = Date.now() + 60_000;
  while (existsSync(root) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.equal(existsSync(root), false, "the tree was not removed");
  const f = await conn.request(MsgType.PING, []);
  assert.equal(f.type, MsgType.PONG);
});

test("a new HELLO while a DELETE runs: the old session's answer is never sent in the new one", async () => {
  const root = join(treeParent(), "tree");
  makeTree(root, 20_000);
  const c = await agent.connect();
  const delId = sendDelete(c, root);
  await c.hello();
  // The same id in the new session is free at once (the HELLO ended the DELETE's operation).
  c.sendFields(MsgType.STAT, 0, delId, [[Tag.PATH, "/"]]);
  const deadline = Date.now() + 60_000;
  while (existsSync(root) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.equal(existsSync(root), false);
  await new Promise((r) => setTimeout(r, 100));
  const newSession = c.pending(delId).filter((f) => c.arrivedAt(f) > c.lastHelloAt);
  assert.deepEqual(newSession.map((f) => f.type), [MsgType.STAT_RESULT], "only the STAT's answer after the HELLO reply");
  c.close();
});

test("a DELETE holds its id until it is answered (EBUSY), and CANCEL does not cut it short", async () => {
  const root = join(treeParent(), "tree");
  makeTree(root, 20_000);
  const delId = sendDelete(conn, root);
  conn.send(MsgType.CANCEL, 0, delId);
  conn.sendFields(MsgType.STAT, 0, delId, [[Tag.PATH, "/"]]);
  const frames = [await conn.next(delId, 60_000), await conn.next(delId, 60_000)];
  const types = frames.map((f) => f.type);
  // The STAT reuses a running id (EBUSY); the DELETE still ends with OK and a removed tree.
  assert.deepEqual(types.sort(), [MsgType.OK, MsgType.ERROR].sort(), `frames ${types}`);
  const err = frames.find((f) => f.type === MsgType.ERROR)!;
  assert.equal(decodeFields(err.payload).u32(Tag.ERRNO), Errno.EBUSY);
  assert.equal(existsSync(root), false);
});

test("many STAT, MKDIR and DELETE requests at once are all answered, each with its own result", async () => {
  const dir = tempDir();
  const n = 64;
  const ids = new Map<number, string>();
  for (let i = 0; i < n; i++) {
    const id = conn.allocId();
    ids.set(id, `mkdir${i}`);
    conn.sendFields(MsgType.MKDIR, 0, id, [[Tag.PATH, join(dir, `a${i}`, "b")], [Tag.FLAGS, { u32: 1 }]]);
  }
  for (const [id, what] of ids) assert.equal((await conn.next(id)).type, MsgType.OK, what);
  const stats = Array.from({ length: n }, (_, i) => conn.request(MsgType.STAT, [[Tag.PATH, i % 2 ? join(dir, `a${i}`) : join(dir, `missing${i}`)]]));
  const results = await Promise.allSettled(stats);
  results.forEach((r, i) => {
    if (i % 2) assert.equal(r.status === "fulfilled" && r.value.type, MsgType.STAT_RESULT);
    else assert.ok(r.status === "rejected" && (r.reason as { errno: number }).errno === Errno.ENOENT, `stat ${i}`);
  });
  await Promise.all(Array.from({ length: n }, (_, i) => conn.request(MsgType.DELETE, [[Tag.PATH, join(dir, `a${i}`)], [Tag.FLAGS, { u32: DeleteFlags.RECURSIVE }]])));
  assert.deepEqual(readdirSync(dir), []);
});

test("a tree 2000 levels deep is deleted whole (in a worker's stack; nftw stopped at 16 levels)", async () => {
  const root = join(tempDir(), "deep");
  // One-letter names keep the deepest path within PATH_MAX (4096).
  const deepest = join(root, ...Array.from({ length: 2000 }, () => "d"));
  mkdirSync(deepest, { recursive: true });
  closeSync(openSync(join(deepest, "f"), "w"));
  try {
    await conn.request(MsgType.DELETE, [[Tag.PATH, root], [Tag.FLAGS, { u32: DeleteFlags.RECURSIVE }]]);
    assert.equal(existsSync(root), false);
  } finally {
    // Node's rmSync recurses too deep for what a failed DELETE leaves; GNU rm does not.
    execFileSync("rm", ["-rf", root]);
  }
});

test("WRITE with FSYNC commits the file (new, replaced, appended) and answers OK with the size", async () => {
  const dir = tempDir();
  const path = join(dir, "sub", "synced.txt");
  const size = await conn.writeFile(path, Buffer.from("first"), { flags: WriteFlags.MKDIRS | WriteFlags.FSYNC, mode: 0o600 });
  assert.equal(size, 5n);
  assert.equal(readFileSync(path, "utf8"), "first");
  await conn.writeFile(path, Buffer.from("second"), { flags: WriteFlags.FSYNC });
  assert.equal(readFileSync(path, "utf8"), "second");
  await conn.writeFile(path, Buffer.from("+more"), { flags: WriteFlags.APPEND | WriteFlags.FSYNC });
  assert.equal(readFileSync(path, "utf8"), "second+more");
  // An empty WRITE (END on the WRITE frame itself) takes the same path.
  const id = conn.allocId();
  conn.sendFields(MsgType.WRITE, 1, id, [[Tag.PATH, join(dir, "empty")], [Tag.FLAGS, { u32: WriteFlags.FSYNC }]]);
  assert.equal((await conn.next(id)).type, MsgType.OK);
  assert.equal(readFileSync(join(dir, "empty"), "utf8"), "");
  assert.deepEqual(readdirSync(join(dir, "sub")), ["synced.txt"], "no temp file left");
});

function hasStrace(): boolean {
  try {
    execFileSync("strace", ["-V"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

test("FSYNC syncs the file before the rename and its directory after; without it neither", { skip: hasStrace() ? false : "strace is not installed" }, async () => {
  const dir = tempDir();
  const log = join(dir, "strace.log");
  const traced = await Agent.startUnder(["strace", "-f", "-qq", "-e", "trace=fsync,fdatasync,rename,renameat,renameat2", "-y", "-o", log, "--"]);
  const c = await traced.connect();
  await c.writeFile(join(dir, "plain"), Buffer.from("x"));
  await c.writeFile(join(dir, "synced"), Buffer.from("y"), { flags: WriteFlags.FSYNC });
  c.close();
  // The host client passes its fsync option on as the flag.
  const client = await AgentClient.connect(await connectSocket(traced.socketPath), { timeoutMs: 5000 });
  await client.writeFile(join(dir, "client-plain"), Buffer.from("z"));
  await client.writeFile(join(dir, "client-synced"), Buffer.from("z"), { fsync: true });
  client.close();
  await traced.stop();
  // With -y strace shows an fd's path: `fsync(5</tmp/x/.hf-write.7.1>) = 0`, `rename("a", "b") = 0`.
  const name = (p: string) => (p === dir ? "<dir>" : p.startsWith(join(dir, ".hf-write.")) ? "<temp>" : p.slice(dir.length + 1));
  const calls = readFileSync(log, "utf8")
    .split("\n")
    .map((l) => /^\d+\s+(\w+)\((?:\d+<([^>]*)>|"[^"]*", "([^"]*)")\)\s+= (-?\d+)/.exec(l))
    .filter((m) => m !== null)
    .map(([, call, fdPath, to, ret]) => `${call} ${name(fdPath ?? to!)} = ${ret}`);
  assert.deepEqual(calls, [
    "rename plain = 0",
    "fsync <temp> = 0",
    "rename synced = 0",
    "fsync <dir> = 0",
    "rename client-plain = 0",
    "fsync <temp> = 0",
    "rename client-synced = 0",
    "fsync <dir> = 0",
  ]);
});

test("the host hanging up right after a WRITE's END: the file is still committed, unanswered", async () => {
  const dir = tempDir();
  const path = join(dir, "f");
  const c = await agent.connect();
  const id = c.allocId();
  c.sendFields(MsgType.WRITE, 0, id, [[Tag.PATH, path], [Tag.FLAGS, { u32: WriteFlags.FSYNC }]]);
  await c.sendData(MsgType.DATA, id, Buffer.alloc(8 * 1024 * 1024, 7));
  // A half-close: the agent reads every frame up to END before it sees the hangup, which then
  // ends the WRITE while its fsync runs.
  c.socket.end();
  await c.closed;
  const deadline = Date.now() + 30_000;
  while (!(existsSync(path) && statSync(path).size === 8 * 1024 * 1024) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.equal(statSync(path).size, 8 * 1024 * 1024);
  assert.deepEqual(readdirSync(dir), ["f"], "no temp file left");
  assert.equal((await conn.request(MsgType.PING, [])).type, MsgType.PONG);
});

test("a WRITE whose rename fails answers the error and leaves no temp file", async () => {
  const dir = tempDir();
  mkdirSync(join(dir, "target"));
  mkdirSync(join(dir, "target", "inside"));
  // rename() of a file onto a non-empty directory fails with EISDIR.
  await expectErrno(conn.writeFile(join(dir, "target"), Buffer.from("x"), { flags: WriteFlags.FSYNC }), Errno.EISDIR);
  assert.deepEqual(readdirSync(dir), ["target"]);
});
