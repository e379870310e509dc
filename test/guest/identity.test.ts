/**
 * IDENTITY (docs/agent-protocol.md, "identity") against the real agent binary, outside a VM. The
 * agent runs on the host here, so every request it would apply is one the host's kernel refuses or
 * one that is invalid: a plain agent only ever gets invalid requests (or nothing to apply), and the
 * parts that do reach a syscall go to an agent that is PID 1 of its own user namespace, where
 * RNDADDENTROPY and clock_settime need capabilities of the host's namespace and fail with EPERM.
 * No test sends a valid HOSTNAME: that part writes /etc, which is the host's here. The parts
 * applied for real are tested in a VM (identity-vm.test.ts). The host's AgentClient.setIdentity is
 * checked here too: its own validation and its deadline.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, test } from "node:test";
import { AgentClient } from "../../src/agent/client.js";
import type { FieldValue } from "../../src/agent/codec.js";
import { IdentityLimits, MsgType, Tag } from "../../src/agent/protocol.js";
import { isHyperfleetError } from "../../src/core/errors.js";
import { Agent, buildAgent, cleanupAll, type Conn, connectSocket, Errno, expectErrno, pid1Argv } from "./harness.js";

const EPERM = 1;
let agent: Agent;
let conn: Conn;
let ns: Agent | null = null;
let nsConn: Conn | undefined;
let client: AgentClient;

before(async () => {
  buildAgent();
  agent = await Agent.start();
  conn = await agent.connect();
  ns = await Agent.startAsPid1();
  if (ns) nsConn = await ns.connect();
  client = await AgentClient.connect(await connectSocket(agent.socketPath), { timeoutMs: 5000 });
});
after(async () => {
  client?.close();
  conn?.close();
  nsConn?.close();
  await cleanupAll();
});

const identity = (c: Conn, fields: Array<[number, FieldValue]>) => c.request(MsgType.IDENTITY, fields);
/** A time the host must never be set to: if a check were skipped, the EPERM of the namespace still stops it. */
const Y2K = { i64: 946_684_800n * 1_000_000_000n };

test("a HOSTNAME outside 1..64 characters of [A-Za-z0-9-_.] is EINVAL", async () => {
  const bad = ["", "a b", "a/b", "a\nb", "a\0b", "a#b", "-x;rm", "héllo", "x".repeat(IdentityLimits.HOSTNAME_MAX + 1)];
  for (const name of bad) {
    const e = await expectErrno(identity(conn, [[Tag.HOSTNAME, name]]), Errno.EINVAL);
    assert.match(e.message, /HOSTNAME/, JSON.stringify(name));
  }
});

test("ENTROPY shorter than 16 or longer than 512 bytes is EINVAL", async () => {
  for (const n of [0, 1, IdentityLimits.ENTROPY_MIN - 1, IdentityLimits.ENTROPY_MAX + 1, 4096]) {
    const e = await expectErrno(identity(conn, [[Tag.ENTROPY, randomBytes(n)]]), Errno.EINVAL);
    assert.match(e.message, /ENTROPY/, `${n} bytes`);
  }
});

test("TIME_NS that is not 8 bytes, or before the epoch, is EINVAL", async () => {
  await expectErrno(identity(conn, [[Tag.TIME_NS, { u32: 1 }]]), Errno.EINVAL);
  const e = await expectErrno(identity(conn, [[Tag.TIME_NS, { i64: -1n }]]), Errno.EINVAL);
  assert.match(e.message, /TIME_NS/);
});

test("unknown tags are ignored: alone they leave nothing to do (OK), beside a bad field the field still counts", async () => {
  const unknown: Array<[number, FieldValue]> = [[30, "x"], [31, randomBytes(3)], [200, randomBytes(1000)]];
  const ok = await identity(conn, unknown);
  assert.equal(ok.type, MsgType.OK);
  assert.equal(ok.payload.length, 0);
  await expectErrno(identity(conn, [...unknown, [Tag.HOSTNAME, "no spaces allowed"]]), Errno.EINVAL);
  // The connection is still good.
  assert.equal((await conn.request(MsgType.PING, [])).type, MsgType.PONG);
});

test("every field is checked before any part is applied", { skip: pid1Argv("/dev/null") === null && "user namespaces are not available here" }, async () => {
  // TIME_NS alone would be tried (EPERM here); with a bad HOSTNAME beside it, nothing is tried.
  await expectErrno(identity(nsConn!, [[Tag.ENTROPY, randomBytes(32)], [Tag.TIME_NS, Y2K], [Tag.HOSTNAME, "bad name"]]), Errno.EINVAL);
  await expectErrno(identity(nsConn!, [[Tag.ENTROPY, randomBytes(8)], [Tag.TIME_NS, Y2K]]), Errno.EINVAL);
});

test("a part the kernel refuses is ERROR with its errno and names the part; entropy goes first, then time", { skip: pid1Argv("/dev/null") === null && "user namespaces are not available here" }, async () => {
  const t = await expectErrno(identity(nsConn!, [[Tag.TIME_NS, Y2K]]), EPERM);
  assert.match(t.message, /^errno 1: time: clock_settime: /);
  const e = await expectErrno(identity(nsConn!, [[Tag.TIME_NS, Y2K], [Tag.ENTROPY, randomBytes(64)]]), EPERM);
  assert.match(e.message, /^errno 1: entropy: RNDADDENTROPY: /);
  assert.ok(Math.abs(Date.now() - Number(Y2K.i64 / 1_000_000n)) > 365 * 86_400_000, "the host's clock was not touched");
});

test("setIdentity refuses bad values itself (INVALID_ARGUMENT naming the field); with nothing to set it resolves", async () => {
  const cases: Array<[Parameters<AgentClient["setIdentity"]>[0], string]> = [
    [{ hostname: "" }, "hostname"],
    [{ hostname: "a b" }, "hostname"],
    [{ hostname: "x".repeat(65) }, "hostname"],
    [{ entropy: randomBytes(15) }, "entropy"],
    [{ entropy: randomBytes(513) }, "entropy"],
    [{ timeNs: -1n }, "timeNs"],
    [{ timeNs: 2n ** 63n }, "timeNs"],
  ];
  for (const [identity, field] of cases) {
    await assert.rejects(client.setIdentity(identity), (e) => isHyperfleetError(e, "INVALID_ARGUMENT") && e.details?.field === field, field);
  }
  await client.setIdentity({});
});

test("setIdentity is bounded: an agent that does not answer is AGENT_TIMEOUT, and the connection stays usable", async () => {
  process.kill(agent.pid, "SIGSTOP");
  try {
    const t0 = Date.now();
    await assert.rejects(client.setIdentity({}, { timeoutMs: 300 }), (e) => isHyperfleetError(e, "AGENT_TIMEOUT"));
    const took = Date.now() - t0;
    assert.ok(took >= 290 && took < 3000, `gave up after ${took} ms`);
  } finally {
    process.kill(agent.pid, "SIGCONT");
  }
  await client.setIdentity({});
  assert.ok((await client.ping()) >= 0);
});

test("setIdentity: a part the guest's kernel refuses rejects with the guest's words", { skip: pid1Argv("/dev/null") === null && "user namespaces are not available here" }, async () => {
  const c = await AgentClient.connect(await connectSocket(ns!.socketPath), { timeoutMs: 5000 });
  try {
    await assert.rejects(c.setIdentity({ timeNs: Y2K.i64 }), (e) => isHyperfleetError(e, "INTERNAL") && /^identity: time: clock_settime: /.test(e.message) && e.details?.errno === EPERM);
  } finally {
    c.close();
  }
});
