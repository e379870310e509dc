/**
 * hf-agent as PID 1 (docs/agent-protocol.md, "shutdown"; the PID 1 duties of guest/agent/pid1.c),
 * run in fresh user + PID + mount + UTS + network namespaces so it can do its mounts, hostname,
 * loopback, reaping and shutdown without touching the host. Skipped where user namespaces are off.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { MsgType, Tag } from "../../src/agent/protocol.js";
import { Agent, buildAgent, cleanupAll, type Conn, pid1Argv, sleep } from "./harness.js";

let agent: Agent | null = null;
let conn: Conn;

before(async () => {
  buildAgent();
  agent = await Agent.startAsPid1();
  if (agent) conn = await agent.connect();
});
after(async () => {
  conn?.close();
  await cleanupAll();
});

// Decided at load time: node:test reads `skip` when the test is declared, before `before` runs.
const available = pid1Argv("/dev/null") !== null;
const skip = () => (available ? false : "user namespaces are not available here");

test("PID 1 mounts /proc, /tmp, /run, sets the default hostname and brings lo up", { skip: skip() }, async () => {
  const r = await conn.exec(["sh", "-c", "echo $$; cat /proc/1/comm; hostname; grep -E ' (/tmp|/run) ' /proc/mounts | cut -d' ' -f2,3; ip -o link show lo"]);
  const lines = r.stdout.toString().trim().split("\n");
  assert.notEqual(lines[0], "1");
  assert.equal(lines[1], "hf-agent");
  assert.equal(lines[2], "hyperfleet");
  assert.ok(lines.includes("/tmp tmpfs"), lines.join("|"));
  assert.ok(lines.includes("/run tmpfs"), lines.join("|"));
  assert.match(lines.at(-1) ?? "", /<[^>]*\bUP\b[^>]*>/);
});

test("PID 1 reaps orphans: no zombies are left behind", { skip: skip() }, async () => {
  // The subshell exits at once, so its sleeps are reparented to PID 1 and die there.
  await conn.exec(["sh", "-c", "(sleep 0.1 & sleep 0.1 & sleep 0.1 &); exit 0"]);
  await sleep(400);
  const r = await conn.exec(["sh", "-c", "grep -l '^State:.*Z' /proc/[0-9]*/status || true"]);
  assert.equal(r.stdout.toString().trim(), "");
});

test("SHUTDOWN as PID 1: OK, SIGTERM to everyone, then reboot(2) ends the namespace", { skip: skip() }, async () => {
  const id = conn.allocId();
  // A process that ignores SIGTERM must be SIGKILLed after the 2 s grace period.
  conn.sendFields(MsgType.EXEC, 0, id, [[Tag.ARG, "sh"], [Tag.ARG, "-c"], [Tag.ARG, "trap '' TERM; echo ready; sleep 30"]]);
  assert.equal((await conn.next(id)).type, MsgType.EXEC_STARTED);
  assert.equal((await conn.next(id)).payload.toString(), "ready\n"); // the trap is in place
  const t0 = Date.now();
  assert.equal((await conn.request(MsgType.SHUTDOWN, [])).type, MsgType.OK);
  const exit = await agent!.exited;
  const took = Date.now() - t0;
  // reboot(RB_POWER_OFF) in a PID namespace kills its init with SIGINT; unshare mirrors that.
  assert.ok(exit.signal === "SIGINT" || exit.code === 128 + 2, JSON.stringify(exit));
  assert.ok(took >= 1900 && took < 5000, `shutdown took ${took} ms, expected the 2 s SIGTERM grace`);
});
