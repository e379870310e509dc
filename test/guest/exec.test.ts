/**
 * Black-box tests of EXEC (docs/agent-protocol.md, "exec") against the real hf-agent over --unix,
 * running the host's /bin/sh and coreutils/busybox.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { decodeFields } from "../../src/agent/codec.js";
import { FLAG_END, MsgType, Tag } from "../../src/agent/protocol.js";
import { Agent, buildAgent, cleanupAll, type Conn, Errno, ProtocolError, processAlive, sleep, tempDir } from "./harness.js";

let agent: Agent;
let conn: Conn;
const isRoot = process.getuid?.() === 0;

before(async () => {
  buildAgent();
  agent = await Agent.start({ HF_AGENT_SECRET: "must-not-leak" });
  conn = await agent.connect();
});
after(async () => {
  conn.close();
  await cleanupAll();
});

async function execError(p: Promise<unknown>): Promise<ProtocolError> {
  const e = await p.then(
    () => assert.fail("expected an ERROR"),
    (err: unknown) => err,
  );
  assert.ok(e instanceof ProtocolError, String(e));
  return e;
}

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

test("uname -a: EXEC_STARTED, output, one END per stream, EXIT last", async () => {
  const r = await conn.exec(["uname", "-a"]);
  assert.ok(r.pid > 0);
  assert.match(r.stdout.toString(), /^Linux /);
  assert.equal(r.exitCode, 0);
  assert.equal(r.signal, 0);
  assert.equal(r.timedOut, false);
  assert.ok(r.durationUs > 0n);
  assert.equal(r.stdoutEnds, 1);
  assert.equal(r.stderrEnds, 1);
  assert.equal(r.types[0], MsgType.EXEC_STARTED);
  assert.equal(r.types.at(-1), MsgType.EXIT);
});

test("stdin is piped to cat (3 MiB, byte-identical) and END closes it", async () => {
  const data = randomBytes(3 * 1024 * 1024);
  const r = await conn.exec(["cat"], { stdin: data });
  assert.equal(r.exitCode, 0);
  assert.equal(sha256(r.stdout), sha256(data));
});

test("empty stdin with END gives EOF at once; without STDIN the child reads /dev/null", async () => {
  assert.equal((await conn.exec(["wc", "-c"], { stdin: "" })).stdout.toString().trim(), "0");
  assert.equal((await conn.exec(["wc", "-c"])).stdout.toString().trim(), "0");
});

test("exit status: sh -c 'exit 3' reports 3", async () => {
  const r = await conn.exec(["sh", "-c", "exit 3"]);
  assert.equal(r.exitCode, 3);
  assert.equal(r.signal, 0);
});

test("stderr is kept apart from stdout", async () => {
  const r = await conn.exec(["sh", "-c", "echo out; echo err >&2; echo out2"]);
  assert.equal(r.stdout.toString(), "out\nout2\n");
  assert.equal(r.stderr.toString(), "err\n");
});

test("TIMEOUT_MS SIGKILLs the process group and reports TIMED_OUT=1, SIGNAL=9", async () => {
  const t0 = Date.now();
  // The grandchild (sleep) is in the same group and dies too, so the pipes close.
  const r = await conn.exec(["sh", "-c", "sleep 30; echo never"], { timeoutMs: 300 });
  const took = Date.now() - t0;
  assert.equal(r.timedOut, true);
  assert.equal(r.signal, 9);
  assert.equal(r.exitCode, -1);
  assert.equal(r.stdout.length, 0);
  assert.ok(took >= 290 && took < 3000, `took ${took} ms`);
});

test("a command killed by a signal reports it (its own kill, and the SIGNAL message)", async () => {
  const self = await conn.exec(["sh", "-c", "kill -TERM $$; sleep 5"]);
  assert.equal(self.signal, 15);
  assert.equal(self.exitCode, -1);
  assert.equal(self.timedOut, false);

  const id = conn.allocId();
  conn.sendFields(MsgType.EXEC, 0, id, [[Tag.ARG, "sleep"], [Tag.ARG, "30"]]);
  const started = await conn.next(id);
  const pid = decodeFields(started.payload).u32(Tag.PID)!;
  conn.sendFields(MsgType.SIGNAL, 0, id, [[Tag.SIGNAL, { u32: 0 }]]); // ignored, not an error
  conn.sendFields(MsgType.SIGNAL, 0, id, [[Tag.SIGNAL, { u32: 2 }]]);
  const r = await conn.collectExec(id, pid);
  assert.equal(r.signal, 2);
});

test("command not found is ERROR ENOENT naming the program; not executable is EACCES", async () => {
  const e = await execError(conn.exec(["hf-no-such-command-xyz", "arg"]));
  assert.equal(e.errno, Errno.ENOENT);
  assert.match(e.message, /hf-no-such-command-xyz/);

  const e2 = await execError(conn.exec(["/nonexistent/dir/prog"]));
  assert.equal(e2.errno, Errno.ENOENT);

  const dir = tempDir();
  const script = join(dir, "not-executable.sh");
  writeFileSync(script, "#!/bin/sh\necho hi\n", { mode: 0o644 });
  const e3 = await execError(conn.exec([script]));
  assert.equal(e3.errno, Errno.EACCES);
  assert.match(e3.message, /not-executable\.sh/);
});

test("env and cwd are applied over the default environment; the agent's own env does not leak", async () => {
  const dir = tempDir();
  const r = await conn.exec(["sh", "-c", 'echo "$FOO|$HOME|$PATH|${HF_AGENT_SECRET-unset}"; pwd'], {
    env: ["FOO=bar", "HOME=/override"],
    cwd: dir,
  });
  const [vars, pwd] = r.stdout.toString().trim().split("\n");
  assert.equal(vars, "bar|/override|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin|unset");
  assert.equal(pwd, dir);

  const def = await conn.exec(["sh", "-c", "pwd; env | sort"]);
  const lines = def.stdout.toString().trim().split("\n");
  assert.equal(lines[0], "/");
  assert.ok(lines.some((l) => l.startsWith("HOME=")));
  assert.ok(!lines.some((l) => l.startsWith("HF_AGENT_SECRET=")));
});

test("a missing CWD is ERROR ENOENT naming it; a malformed ENV is EINVAL", async () => {
  const e = await execError(conn.exec(["true"], { cwd: "/nonexistent-hf-dir" }));
  assert.equal(e.errno, Errno.ENOENT);
  assert.match(e.message, /nonexistent-hf-dir/);
  const e2 = await execError(conn.exec(["true"], { env: ["NOEQUALS"] }));
  assert.equal(e2.errno, Errno.EINVAL);
});

test("USER switches uid/gid (name, uid:gid), sets HOME/USER; an unknown user is EINVAL", { skip: !isRoot && "needs root to switch users" }, async () => {
  const named = await conn.exec(["sh", "-c", 'id -u; id -g; echo "$USER $LOGNAME $HOME"; pwd'], { user: "nobody" });
  const [uid, , who] = named.stdout.toString().trim().split("\n");
  assert.equal(uid, "65534");
  assert.match(who ?? "", /^nobody nobody \//);

  const numeric = await conn.exec(["sh", "-c", "id -u; id -g; id -G"], { user: "1234:2345" });
  assert.deepEqual(numeric.stdout.toString().trim().split("\n"), ["1234", "2345", "2345"]);

  const e = await execError(conn.exec(["true"], { user: "no-such-user-hf" }));
  assert.equal(e.errno, Errno.EINVAL);
});

test("12 concurrent execs on one connection run in parallel and keep their output apart", async () => {
  const t0 = Date.now();
  const results = await Promise.all(
    Array.from({ length: 12 }, (_, i) => conn.exec(["sh", "-c", `sleep 0.3; echo job-${i}; echo err-${i} >&2; exit ${i}`])),
  );
  const took = Date.now() - t0;
  results.forEach((r, i) => {
    assert.equal(r.stdout.toString(), `job-${i}\n`);
    assert.equal(r.stderr.toString(), `err-${i}\n`);
    assert.equal(r.exitCode, i);
  });
  assert.ok(took < 2500, `12 x 300 ms took ${took} ms: not concurrent`);
});

test("large output streams in order (16 MiB through stdout)", async () => {
  const r = await conn.exec(["sh", "-c", "head -c 16777216 /dev/zero | tr '\\0' 'x'"]);
  assert.equal(r.exitCode, 0);
  assert.equal(r.stdout.length, 16 * 1024 * 1024);
  assert.ok(r.stdout.every((b) => b === 0x78));
});

test("a background grandchild holding the pipes does not delay EXIT beyond the grace period", async () => {
  const t0 = Date.now();
  const r = await conn.exec(["sh", "-c", "sleep 3 & echo $!"]);
  const took = Date.now() - t0;
  const grandchild = Number(r.stdout.toString().trim());
  assert.ok(grandchild > 0 && processAlive(grandchild), "the grandchild outlives EXIT");
  process.kill(grandchild, "SIGKILL");
  assert.equal(r.exitCode, 0);
  assert.equal(r.stdoutEnds, 1);
  assert.ok(took < 1500, `EXIT after ${took} ms`);
});

test("stdin the child does not read is capped at 16 MiB: ERROR ENOBUFS ends the exec and kills it", async () => {
  const id = conn.allocId();
  conn.sendFields(MsgType.EXEC, 0, id, [[Tag.ARG, "sleep"], [Tag.ARG, "30"], [Tag.STDIN, { u8: 1 }]]);
  const pid = decodeFields((await conn.next(id)).payload).u32(Tag.PID)!;
  await conn.sendData(MsgType.STDIN, id, randomBytes(17 * 1024 * 1024), false);
  const f = await conn.next(id);
  assert.equal(f.type, MsgType.ERROR);
  assert.equal(decodeFields(f.payload).u32(Tag.ERRNO), Errno.ENOBUFS);
  for (let i = 0; i < 100 && processAlive(pid); i++) await sleep(20);
  assert.equal(processAlive(pid), false);
  // Late frames for the ended exec are ignored, and nothing else arrives for it.
  conn.send(MsgType.STDIN, FLAG_END, id, Buffer.from("late"));
  assert.equal((await conn.request(MsgType.PING, [])).type, MsgType.PONG);
  assert.equal(conn.pending(id).length, 0);
});

test("closing the connection kills the process groups of its running execs", async () => {
  const c = await agent.connect();
  const id = c.allocId();
  c.sendFields(MsgType.EXEC, 0, id, [[Tag.ARG, "sh"], [Tag.ARG, "-c"], [Tag.ARG, "sleep 30 & echo $!; wait"]]);
  const pid = decodeFields((await c.next(id)).payload).u32(Tag.PID)!;
  const out = await c.next(id);
  const grandchild = Number(out.payload.toString().trim());
  assert.ok(processAlive(pid) && processAlive(grandchild));
  c.close();
  for (let i = 0; i < 100 && (processAlive(pid) || processAlive(grandchild)); i++) await sleep(20);
  assert.equal(processAlive(pid), false);
  assert.equal(processAlive(grandchild), false);
});
