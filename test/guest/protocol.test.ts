/**
 * Black-box tests of hf-agent's connection handling (docs/agent-protocol.md, "Frames", "Connection
 * setup", message table rules) against the real binary over --unix.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { after, before, test } from "node:test";
import { decodeFields, encodeFields, encodeHeader } from "../../src/agent/codec.js";
import { FLAG_END, MAX_PAYLOAD, MsgType, PROTOCOL_VERSION, Tag } from "../../src/agent/protocol.js";
import { Agent, AGENT_BIN, buildAgent, cleanupAll, Conn, Errno, expectErrno, processAlive, sleep } from "./harness.js";

let agent: Agent;

before(async () => {
  buildAgent();
  agent = await Agent.start();
});
after(cleanupAll);


test("--version prints the agent and protocol version", () => {
  const out = execFileSync(AGENT_BIN, ["--version"]).toString();
  assert.match(out, /^hf-agent \d+\.\d+\.\d+ \(protocol 1\)\n$/);
});

test("READY comes first, then HELLO negotiates the version", async () => {
  const c = await Conn.open(agent.socketPath);
  const ready = await c.ready!;
  assert.equal(ready.flags & FLAG_END, FLAG_END);
  const r = decodeFields(ready.payload);
  assert.equal(r.u32(Tag.VERSION), PROTOCOL_VERSION);
  assert.match(r.str(Tag.AGENT_VERSION) ?? "", /^\d+\.\d+\.\d+$/);

  // A newer host gets the agent's (lower) version back.
  const hello = await c.hello(PROTOCOL_VERSION + 5);
  assert.equal(hello.u32(Tag.VERSION), PROTOCOL_VERSION);
  assert.equal(hello.str(Tag.AGENT_VERSION), r.str(Tag.AGENT_VERSION));
  c.close();
});

test("a version the agent does not speak is refused, and the host may retry", async () => {
  const c = await Conn.open(agent.socketPath);
  await expectErrno(c.hello(0), Errno.EPROTONOSUPPORT);
  await expectErrno(c.request(MsgType.PING, []), Errno.EPROTO); // still not hello'd
  const hello = await c.hello();
  assert.equal(hello.u32(Tag.VERSION), 1);
  c.close();
});

test("HELLO may come before READY is read; the reply echoes the NONCE", async () => {
  const c = await Conn.session(agent.socketPath);
  assert.equal((await c.request(MsgType.PING, [])).type, MsgType.PONG);
  c.close();
});

test("every HELLO starts a new session: running operations end, their processes are killed", async () => {
  const c = await agent.connect();
  const id = c.allocId();
  c.sendFields(MsgType.EXEC, 0, id, [[Tag.ARG, "sleep"], [Tag.ARG, "30"]]);
  const pid = decodeFields((await c.next(id)).payload).u32(Tag.PID)!;
  const nonce = randomBytes(8);
  c.sendFields(MsgType.HELLO, 0, 0, [[Tag.VERSION, { u32: PROTOCOL_VERSION }], [Tag.NONCE, nonce]]);
  const reply = await c.next(0);
  assert.equal(reply.type, MsgType.HELLO);
  assert.ok(decodeFields(reply.payload).raw(Tag.NONCE)?.equals(nonce));
  for (let i = 0; i < 100 && processAlive(pid); i++) await sleep(20);
  assert.equal(processAlive(pid), false);
  assert.equal((await c.request(MsgType.PING, [])).type, MsgType.PONG);
  assert.equal(c.pending(id).length, 0, "the old exec sends nothing more");
  c.close();
});

test("HELLO without VERSION is EINVAL", async () => {
  const c = await Conn.open(agent.socketPath);
  c.send(MsgType.HELLO, 0, 0);
  const f = await c.next(0);
  assert.equal(f.type, MsgType.ERROR);
  assert.equal(decodeFields(f.payload).u32(Tag.ERRNO), Errno.EINVAL);
  c.close();
});

test("operations before HELLO get EPROTO with their id", async () => {
  const c = await Conn.open(agent.socketPath);
  const e = await expectErrno(c.request(MsgType.EXEC, [[Tag.ARG, "true"]]), Errno.EPROTO);
  assert.equal(e.frame.id, 1);
  await expectErrno(c.request(MsgType.STAT, [[Tag.PATH, "/"]]), Errno.EPROTO);
  c.close();
});

test("PING is echoed with its id and payload, up to the 1 MiB frame limit", async () => {
  const c = await agent.connect();
  for (const payload of [Buffer.alloc(0), randomBytes(1000), randomBytes(MAX_PAYLOAD)]) {
    const id = c.allocId();
    c.send(MsgType.PING, 0, id, payload);
    const f = await c.next(id);
    assert.equal(f.type, MsgType.PONG);
    assert.equal(f.flags & FLAG_END, FLAG_END);
    assert.ok(f.payload.equals(payload));
  }
  c.close();
});

test("PING round trip over --unix (agent + node overhead)", async (t) => {
  const c = await agent.connect();
  for (let i = 0; i < 200; i++) await c.request(MsgType.PING, []); // warm up
  const n = 2000;
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await c.request(MsgType.PING, []);
    samples.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  samples.sort((a, b) => a - b);
  const median = samples[n >> 1]!;
  t.diagnostic(`ping round trip: median ${median.toFixed(1)} us, p99 ${samples[Math.floor(n * 0.99)]!.toFixed(1)} us`);
  assert.ok(median < 5000, `median ${median} us`);
  c.close();
});

test("unknown message types get ENOSYS with the same id; host-bound types too", async () => {
  const c = await agent.connect();
  for (const type of [0x55, MsgType.PONG, MsgType.EXIT, MsgType.OK]) {
    const id = c.allocId();
    c.send(type, 0, id, Buffer.from("x"));
    const f = await c.next(id);
    assert.equal(f.type, MsgType.ERROR);
    assert.equal(f.id, id);
    assert.equal(decodeFields(f.payload).u32(Tag.ERRNO), Errno.ENOSYS);
  }
  c.close();
});

test("field rules: truncated field EPROTO, NUL in a path EINVAL, wrong numeric size EINVAL, unknown tags ignored", async () => {
  const c = await agent.connect();
  const id = c.allocId();
  // A field header that announces 10 bytes but only 2 follow.
  const truncated = Buffer.concat([encodeFields([[Tag.PATH, "/"]]), Buffer.from([Tag.MODE, 10, 0, 0, 0, 1, 2])]);
  c.send(MsgType.STAT, 0, id, truncated);
  const f = await c.next(id);
  assert.equal(f.type, MsgType.ERROR);
  assert.equal(decodeFields(f.payload).u32(Tag.ERRNO), Errno.EPROTO);

  await expectErrno(c.request(MsgType.STAT, [[Tag.PATH, "/tmp\0/x"]]), Errno.EINVAL);
  await expectErrno(c.request(MsgType.EXEC, [[Tag.ARG, "echo"], [Tag.ARG, "a\0b"]]), Errno.EINVAL);
  await expectErrno(c.request(MsgType.MKDIR, [[Tag.PATH, "/tmp/x"], [Tag.MODE, Buffer.from([1, 2])]]), Errno.EINVAL);
  await expectErrno(c.request(MsgType.EXEC, []), Errno.EINVAL);
  await expectErrno(c.request(MsgType.STAT, []), Errno.EINVAL);

  const ok = await c.request(MsgType.STAT, [[200, "from the future"], [Tag.PATH, "/"], [99, Buffer.alloc(3)]]);
  assert.equal(ok.type, MsgType.STAT_RESULT);
  c.close();
});

test("a request reusing a running operation's id gets EBUSY; the operation is unaffected", async () => {
  const c = await agent.connect();
  const id = c.allocId();
  c.sendFields(MsgType.EXEC, 0, id, [[Tag.ARG, "sleep"], [Tag.ARG, "30"]]);
  const started = await c.next(id);
  assert.equal(started.type, MsgType.EXEC_STARTED);
  c.sendFields(MsgType.STAT, 0, id, [[Tag.PATH, "/"]]);
  const busy = await c.next(id);
  assert.equal(busy.type, MsgType.ERROR);
  assert.equal(decodeFields(busy.payload).u32(Tag.ERRNO), Errno.EBUSY);
  c.sendFields(MsgType.SIGNAL, 0, id, [[Tag.SIGNAL, { u32: 15 }]]);
  const r = await c.collectExec(id, 0);
  assert.equal(r.signal, 15);
  // The id is free again once EXIT was sent.
  c.sendFields(MsgType.STAT, 0, id, [[Tag.PATH, "/"]]);
  assert.equal((await c.next(id)).type, MsgType.STAT_RESULT);
  c.close();
});

test("stateful operations need a non-zero id", async () => {
  const c = await agent.connect();
  c.sendFields(MsgType.EXEC, 0, 0, [[Tag.ARG, "true"]]);
  const f = await c.next(0);
  assert.equal(f.type, MsgType.ERROR);
  assert.equal(decodeFields(f.payload).u32(Tag.ERRNO), Errno.EINVAL);
  c.close();
});

for (const [what, header] of [
  ["a length above 1 MiB", encodeHeader(MsgType.PING, 0, 1, MAX_PAYLOAD + 1)],
  ["non-zero reserved bytes", (() => {
    const h = encodeHeader(MsgType.PING, 0, 1, 0);
    h.writeUInt16LE(0x100, 6);
    return h;
  })()],
] as const) {
  test(`a frame with ${what} gets ERROR EPROTO on id 0, the connection is dropped, the agent keeps serving`, async () => {
    const bystander = await agent.connect();
    const c = await agent.connect();
    const id = c.allocId();
    c.sendFields(MsgType.EXEC, 0, id, [[Tag.ARG, "sleep"], [Tag.ARG, "30"]]);
    const pid = decodeFields((await c.next(id)).payload).u32(Tag.PID)!;
    c.socket.write(header);
    const f = await c.next(0);
    assert.equal(f.type, MsgType.ERROR);
    assert.equal(decodeFields(f.payload).u32(Tag.ERRNO), Errno.EPROTO);
    await c.closed;
    // The dropped connection's exec was killed.
    for (let i = 0; i < 100 && processAlive(pid); i++) await sleep(20);
    assert.equal(processAlive(pid), false);
    // Other connections and new ones work.
    assert.equal((await bystander.request(MsgType.PING, [])).type, MsgType.PONG);
    const fresh = await agent.connect();
    assert.equal((await fresh.request(MsgType.PING, [])).type, MsgType.PONG);
    fresh.close();
    bystander.close();
  });
}

test("garbage bytes on a fresh connection do not crash the agent", async () => {
  for (let i = 0; i < 20; i++) {
    const c = await Conn.open(agent.socketPath);
    c.socket.write(randomBytes(1 + Math.floor(Math.random() * 4000)));
    await Promise.race([c.closed, sleep(50)]);
    c.close();
  }
  const c = await agent.connect();
  assert.equal((await c.request(MsgType.PING, [])).type, MsgType.PONG);
  c.close();
  assert.equal(agent.proc.exitCode, null);
});

test("many connections are served independently", async () => {
  const conns = await Promise.all(Array.from({ length: 8 }, () => agent.connect()));
  const results = await Promise.all(conns.map((c, i) => c.exec(["sh", "-c", `echo conn-${i}`])));
  results.forEach((r, i) => assert.equal(r.stdout.toString(), `conn-${i}\n`));
  for (const c of conns) c.close();
});

test("SHUTDOWN is answered OK; off PID 1 the agent then kills its processes and exits 0", async () => {
  const own = await Agent.start();
  const c = await own.connect();
  const id = c.allocId();
  c.sendFields(MsgType.EXEC, 0, id, [[Tag.ARG, "sleep"], [Tag.ARG, "30"]]);
  const pid = decodeFields((await c.next(id)).payload).u32(Tag.PID)!;
  const ok = await c.request(MsgType.SHUTDOWN, []);
  assert.equal(ok.type, MsgType.OK);
  const { code } = await own.exited;
  assert.equal(code, 0);
  for (let i = 0; i < 100 && processAlive(pid); i++) await sleep(20);
  assert.equal(processAlive(pid), false);
  assert.equal(existsSync(own.socketPath), false);
});

test("SIGTERM stops the agent cleanly (exit 0, socket removed)", async () => {
  const own = await Agent.start();
  const c = await own.connect();
  process.kill(own.pid, "SIGTERM");
  const { code } = await own.exited;
  assert.equal(code, 0);
  assert.equal(existsSync(own.socketPath), false);
  await c.closed;
});
