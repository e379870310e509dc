/**
 * Black-box tests of detached EXEC, the machine's main process (docs/agent-protocol.md, "detached
 * exec"), against the real hf-agent over --unix, plus one run as PID 1 of a namespace for the
 * shutdown path. Logs go to temp dirs, never to the host's /var/log.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { AgentClient } from "../../src/agent/client.js";
import { decodeFields } from "../../src/agent/codec.js";
import { DEFAULT_LOG_PATH, ExecFlags, FLAG_END, MsgType, Tag } from "../../src/agent/protocol.js";
import { isHyperfleetError } from "../../src/core/errors.js";
import { Agent, buildAgent, cleanupAll, type Conn, Errno, expectErrno, pid1Argv, processAlive, sleep, tempDir } from "./harness.js";

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
  conn?.close();
  await cleanupAll();
});


async function waitGone(pid: number): Promise<void> {
  for (let i = 0; i < 150 && processAlive(pid); i++) await sleep(20);
  assert.equal(processAlive(pid), false, `process ${pid} is still alive`);
}

/** Parses an `exited <code> <signal> <ms>` status line. */
function exited(status: string): { code: number; signal: number; ms: number } {
  const m = /^exited (-?\d+) (\d+) (\d+)\n$/.exec(status);
  assert.ok(m, `not an exited line: ${JSON.stringify(status)}`);
  return { code: Number(m[1]), signal: Number(m[2]), ms: Number(m[3]) };
}

const LOOP = "i=0; while :; do echo out $i; echo err $i >&2; i=$((i+1)); sleep 0.05; done";
const TERM_TRAP = "trap 'echo got TERM; exit 3' TERM; echo ready; while :; do sleep 0.05; done";
/** The log of TERM_TRAP after SIGTERM to its group (some shells report their killed sleep first). */
const lastWords = (pid: number) => new RegExp(`^ready\\n(Terminated\\n)?got TERM\\n\\[hyperfleet\\] process ${pid} exited with code 3\\n$`);

test("a detached exec outlives its connection (an ordinary one does not) and both streams keep landing in the log", async () => {
  const log = join(dir, "outlive/main.log");
  const c = await agent.connect();
  const pid = await c.execDetached(["sh", "-c", LOOP], { logPath: log });
  const id = c.allocId();
  c.sendFields(MsgType.EXEC, 0, id, [[Tag.ARG, "sleep"], [Tag.ARG, "30"]]);
  const ordinary = decodeFields((await c.next(id)).payload).u32(Tag.PID)!;
  c.close();
  await c.closed;
  await waitGone(ordinary);
  assert.ok(processAlive(pid), "the detached process was killed with its connection");

  const first = await conn.waitForFile(log, /out 3\n/);
  const second = await conn.waitForFile(log, new RegExp(`out ${first.split("\n").length}\n`));
  assert.ok(second.startsWith(first), "the log is only appended to");
  // One pipe for both streams keeps them in the order they were written.
  const lines = second.trim().split("\n").slice(0, 20);
  lines.forEach((l, i) => assert.equal(l, `${i % 2 ? "err" : "out"} ${Math.floor(i / 2)}`));
  assert.match(await conn.waitForFile(`${log}.status`, /^running/), new RegExp(`^running ${pid} \\d+\\n$`));

  assert.equal((await conn.exec(["kill", "-KILL", String(pid)])).exitCode, 0);
  const x = exited(await conn.waitForFile(`${log}.status`, /^exited/));
  assert.deepEqual([x.code, x.signal], [-1, 9]);
  assert.ok(Math.abs(x.ms - Date.now()) < 5000, `end time ${x.ms}`);
  assert.match(await conn.waitForFile(log, /\[hyperfleet\]/), new RegExp(`\\n\\[hyperfleet\\] process ${pid} was killed by signal 9\\n$`));
});

test("the status goes from running to exited with the code; the log ends with a note; env, cwd and /dev/null stdin apply", async () => {
  const log = join(dir, "status/app.log");
  const t0 = Date.now();
  const pid = await conn.execDetached(["sh", "-c", 'echo "$FOO $(pwd)"; wc -c; printf partial >&2; sleep 0.5; exit 7'], {
    logPath: log,
    env: ["FOO=bar"],
    cwd: dir,
  });
  const running = /^running (\d+) (\d+)\n$/.exec((await conn.readFile(`${log}.status`)).data.toString());
  assert.ok(running, "status right after EXEC_STARTED");
  assert.equal(Number(running[1]), pid);
  assert.ok(Number(running[2]) >= t0 - 1000 && Number(running[2]) <= Date.now() + 1000);

  const x = exited(await conn.waitForFile(`${log}.status`, /^exited/));
  assert.deepEqual([x.code, x.signal], [7, 0]);
  assert.ok(x.ms >= Number(running[2]) + 400);
  // The exit note starts on a line of its own even after unterminated output.
  assert.equal((await conn.readFile(log)).data.toString(), `bar ${dir}\n0\npartial\n[hyperfleet] process ${pid} exited with code 7\n`);
});

test("EXEC_STARTED carries END: the id is free at once, nothing else comes for it, and a new HELLO does not kill the process", async () => {
  const c = await agent.connect();
  const log = join(dir, "session/main.log");
  const id = c.allocId();
  c.sendFields(MsgType.EXEC, 0, id, [[Tag.ARG, "sleep"], [Tag.ARG, "30"], [Tag.FLAGS, { u32: ExecFlags.DETACHED }], [Tag.LOG_PATH, log]]);
  const started = await c.next(id);
  assert.equal(started.type, MsgType.EXEC_STARTED);
  assert.equal(started.flags & FLAG_END, FLAG_END);
  const pid = decodeFields(started.payload).u32(Tag.PID)!;

  c.send(MsgType.PING, 0, id, Buffer.from("same id"));
  assert.equal((await c.next(id)).type, MsgType.PONG, "the id is free again");
  c.sendFields(MsgType.SIGNAL, 0, id, [[Tag.SIGNAL, { u32: 9 }]]); // no operation: ignored
  c.send(MsgType.STDIN, FLAG_END, id, Buffer.from("ignored"));
  await c.hello(); // a new session ends the connection's operations, not detached processes
  await sleep(200);
  assert.ok(processAlive(pid));
  assert.equal(c.pending(id).length, 0);
  c.close();

  await conn.exec(["kill", String(pid)]);
  assert.deepEqual(exited(await conn.waitForFile(`${log}.status`, /^exited/)).signal, 15);
});

test("one process per log: EBUSY while it runs (also under another name), other logs run side by side, free after the exit", async () => {
  const log = join(dir, "busy/main.log");
  const pid = await conn.execDetached(["sleep", "30"], { logPath: log });
  const e = await expectErrno(conn.execDetached(["true"], { logPath: log }), Errno.EBUSY);
  assert.match(e.message, new RegExp(`${pid}.*main\\.log`));
  await expectErrno(conn.execDetached(["true"], { logPath: join(dir, "busy/.//main.log") }), Errno.EBUSY);

  const other = join(dir, "busy/other.log");
  await conn.execDetached(["sh", "-c", "echo side by side"], { logPath: other });
  assert.deepEqual(exited(await conn.waitForFile(`${other}.status`, /^exited/)).code, 0);

  await conn.exec(["kill", "-TERM", String(pid)]);
  const x = exited(await conn.waitForFile(`${log}.status`, /^exited/));
  assert.deepEqual([x.code, x.signal], [-1, 15]);
  const again = await conn.execDetached(["sh", "-c", "echo again"], { logPath: log });
  await conn.waitForFile(`${log}.status`, new RegExp("^exited 0 0 "));
  assert.match((await conn.readFile(log)).data.toString(), new RegExp(`\\nagain\\n\\[hyperfleet\\] process ${again} exited with code 0\\n$`));
});

test("what a detached exec cannot have is EINVAL; a log that cannot be opened and a missing program are errors", async () => {
  const log = join(dir, "invalid/main.log");
  await expectErrno(conn.exec(["true"], { timeoutMs: 1000, extra: [[Tag.FLAGS, { u32: ExecFlags.DETACHED }]] }), Errno.EINVAL);
  await expectErrno(conn.exec(["cat"], { stdin: "x", extra: [[Tag.FLAGS, { u32: ExecFlags.DETACHED }]] }), Errno.EINVAL);
  await expectErrno(conn.execDetached(["true"], { logPath: "relative/main.log" }), Errno.EINVAL);
  await expectErrno(conn.exec(["true"], { extra: [[Tag.LOG_PATH, log]] }), Errno.EINVAL);
  await expectErrno(conn.exec(["true"], { extra: [[Tag.FLAGS, { u32: ExecFlags.DETACHED | 2 }], [Tag.LOG_PATH, log]] }), Errno.EINVAL);
  await expectErrno(conn.execDetached(["true"], { logPath: dir }), Errno.EISDIR);
  const e = await expectErrno(conn.execDetached(["hf-no-such-program"], { logPath: log }), Errno.ENOENT);
  assert.match(e.message, /hf-no-such-program/);
  await expectErrno(conn.readFile(`${log}.status`), Errno.ENOENT);
  // Nothing is left behind: the log is free for a process that does run.
  await conn.execDetached(["true"], { logPath: log });
  await conn.waitForFile(`${log}.status`, /^exited 0 0 /);
});

test("the log rotates exactly at the cap into <log>.1, replacing an older one (HF_AGENT_LOG_MAX)", async () => {
  const cap = 65536;
  const small = await Agent.start({ HF_AGENT_LOG_MAX: String(cap) });
  const c = await small.connect();
  const log = join(dir, "rotate/main.log");
  await c.writeFile(`${log}.1`, Buffer.from("from an earlier run\n"), { flags: 1 /* MKDIRS */ });
  const pid = await c.execDetached(["seq", "1", "40000"], { logPath: log });
  await c.waitForFile(`${log}.status`, /^exited 0 0 /);
  const prev = (await c.readFile(`${log}.1`)).data;
  const cur = (await c.readFile(log)).data;
  assert.equal(prev.length, cap);
  assert.ok(cur.length > 0 && cur.length <= cap, `current log has ${cur.length} bytes`);
  const all = Buffer.from(Array.from({ length: 40000 }, (_, i) => `${i + 1}\n`).join("") + `[hyperfleet] process ${pid} exited with code 0\n`);
  const tail = Buffer.concat([prev, cur]);
  assert.ok(tail.equals(all.subarray(all.length - tail.length)), "<log>.1 + <log> is the tail of the output");
  c.close();
  await small.stop();
});

test("stopping the agent (not PID 1) sends SIGTERM to detached processes and keeps what they say while stopping", async () => {
  const a = await Agent.start();
  const c = await a.connect();
  const log = join(dir, "stop/main.log");
  const pid = await c.execDetached(["sh", "-c", TERM_TRAP], { logPath: log });
  await c.waitForFile(log, /ready\n/);
  c.close();
  await a.stop();
  assert.equal((await a.exited).code, 0);
  assert.match(readFileSync(log, "utf8"), lastWords(pid));
  assert.deepEqual(exited(readFileSync(`${log}.status`, "utf8")).code, 3);
  await waitGone(pid);
});

test("the host client: execDetached starts it, the guest's EBUSY comes back with its errno", async () => {
  const log = join(dir, "client/main.log");
  const socket = connect(agent.socketPath);
  await new Promise((res) => socket.once("connect", res));
  const client = await AgentClient.connect(socket, { timeoutMs: 5000 });
  try {
    const { pid } = await client.execDetached(["sh", "-c", 'echo "$GREETING from $(pwd)"; exec sleep 30'], { env: { GREETING: "hi" }, cwd: "/", logPath: log });
    assert.ok(pid > 0);
    const busy = await client.execDetached(["true"], { logPath: log }).then(
      () => assert.fail("expected EBUSY"),
      (e: unknown) => e,
    );
    assert.ok(isHyperfleetError(busy) && (busy.details as { errno: number }).errno === Errno.EBUSY, String(busy));
    assert.equal((await conn.waitForFile(log, /from/)), "hi from /\n");
    await client.exec(["kill", String(pid)]);
    await conn.waitForFile(`${log}.status`, /^exited -1 15 /);
  } finally {
    client.close();
  }
});

// Decided at load time: node:test reads `skip` when the test is declared.
const pid1 = pid1Argv("/dev/null") !== null;

test("as PID 1: the default LOG_PATH; SHUTDOWN SIGTERMs detached processes and records their last words and exit", { skip: !pid1 && "user namespaces are not available here" }, async () => {
  const p1 = (await Agent.startAsPid1())!;
  const c = await p1.connect();
  // A private /var/log inside the namespace, so the default log never touches the host's.
  assert.equal((await c.exec(["mount", "-t", "tmpfs", "tmpfs", "/var/log"])).exitCode, 0);
  const first = await c.execDetached(["sh", "-c", "echo main process"]);
  await c.waitForFile(`${DEFAULT_LOG_PATH}.status`, /^exited 0 0 /);
  assert.equal((await c.readFile(DEFAULT_LOG_PATH)).data.toString(), `main process\n[hyperfleet] process ${first} exited with code 0\n`);

  // This log is on the host's disk (under /var/tmp), so it can be checked after the namespace is gone.
  const log = join(tempDir("hf-agent-pid1-", "/var/tmp"), "main.log");
  const pid = await c.execDetached(["sh", "-c", TERM_TRAP], { logPath: log });
  await c.waitForFile(log, /ready\n/);
  assert.equal((await c.request(MsgType.SHUTDOWN, [])).type, MsgType.OK);
  await p1.exited;
  assert.match(readFileSync(log, "utf8"), lastWords(pid));
  assert.deepEqual(exited(readFileSync(`${log}.status`, "utf8")).code, 3);
});
