/**
 * Black-box tests of CANCEL (docs/agent-protocol.md, "cancel") against the real hf-agent over
 * --unix: each kind of operation ends early, and the connection stays usable afterwards.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { decodeFields } from "../../src/agent/codec.js";
import { FLAG_END, MsgType, Tag } from "../../src/agent/protocol.js";
import { Agent, buildAgent, cleanupAll, type Conn, Errno, tempDir } from "./harness.js";

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

async function pong(): Promise<void> {
  const f = await conn.request(MsgType.PING, [], 0);
  assert.equal(f.type, MsgType.PONG);
}

test("CANCEL of a READ of an endless file (/proc/self/pagemap, size 0) ends it with ECANCELED", async () => {
  const id = conn.allocId();
  conn.sendFields(MsgType.READ, 0, id, [[Tag.PATH, "/proc/self/pagemap"]]);
  // pagemap covers the whole address space (hundreds of GiB): without CANCEL it streams on.
  let f = await conn.next(id);
  assert.equal(f.type, MsgType.DATA);
  conn.send(MsgType.CANCEL, 0, id);
  let data = 0;
  for (;;) {
    f = await conn.next(id, 20_000);
    if (f.type !== MsgType.DATA) break;
    assert.equal(f.flags & FLAG_END, 0, "a cancelled READ must not look complete");
    data++;
  }
  assert.equal(f.type, MsgType.ERROR);
  assert.equal(decodeFields(f.payload).u32(Tag.ERRNO), Errno.ECANCELED);
  // What was queued before the CANCEL is bounded by the agent's output high-water mark (~1 MiB).
  assert.ok(data <= 64, `${data} DATA frames after CANCEL`);
  await pong();
  assert.equal(conn.pending(id).length, 0);
});

test("CANCEL of a WRITE removes its temp file and leaves the target untouched", async () => {
  const sub = join(dir, "write");
  mkdirSync(sub);
  const path = join(sub, "target");
  writeFileSync(path, "original");
  const id = conn.allocId();
  conn.sendFields(MsgType.WRITE, 0, id, [[Tag.PATH, path]]);
  await conn.sendData(MsgType.DATA, id, randomBytes(512 * 1024), false);
  await pong(); // the DATA was processed
  assert.equal(readdirSync(sub).length, 2, "temp file exists during the upload");
  conn.send(MsgType.CANCEL, 0, id);
  const f = await conn.next(id);
  assert.equal(f.type, MsgType.ERROR);
  assert.equal(decodeFields(f.payload).u32(Tag.ERRNO), Errno.ECANCELED);
  assert.deepEqual(readdirSync(sub), ["target"]);
  // DATA crossing the CANCEL is ignored, and the id is free again.
  conn.send(MsgType.DATA, FLAG_END, id, Buffer.from("late"));
  await pong();
  assert.equal(conn.pending(id).length, 0);
  assert.deepEqual(readdirSync(sub), ["target"]);
});

test("CANCEL of an EXEC SIGKILLs its process group; EXIT follows as usual", async () => {
  const id = conn.allocId();
  conn.sendFields(MsgType.EXEC, 0, id, [[Tag.ARG, "sh"], [Tag.ARG, "-c"], [Tag.ARG, "sleep 60 & wait"], [Tag.STDIN, { u8: 0 }]]);
  const started = await conn.next(id);
  assert.equal(started.type, MsgType.EXEC_STARTED);
  conn.send(MsgType.CANCEL, 0, id);
  const r = await conn.collectExec(id, decodeFields(started.payload).u32(Tag.PID)!, 10_000);
  assert.equal(r.signal, 9);
  assert.equal(r.exitCode, -1);
  assert.equal(r.timedOut, false);
});

test("CANCEL of an unknown or finished id is ignored without an answer", async () => {
  const done = conn.allocId();
  conn.send(MsgType.PING, 0, done);
  assert.equal((await conn.next(done)).type, MsgType.PONG);
  const unknown = conn.allocId();
  conn.send(MsgType.CANCEL, 0, done);
  conn.send(MsgType.CANCEL, 0, unknown);
  conn.send(MsgType.CANCEL, 0, 0);
  await pong();
  assert.equal(conn.pending(done).length, 0);
  assert.equal(conn.pending(unknown).length, 0);
  assert.equal(conn.pending(0).length, 0);
});
