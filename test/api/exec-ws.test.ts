/**
 * GET /machines/:id/exec/ws against a real daemon process (a loopback port) and a real VM:
 * stdout/stderr/exit, stdin, signals, a terminal and its resize, errors before and after the
 * upgrade with their codes, the browser's subprotocol auth, and a slow reader that must not make
 * the daemon buffer (its RSS measured from /proc). Cleanup: daemon and VMs killed by pid.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { ExecWs, Refused } from "./exec-ws-client.js";
import { AUTH, endDaemons, KEY, spawnDaemon, until, vmSkipReason, type ChildDaemon } from "./helpers.js";

const skip = vmSkipReason();
let d: ChildDaemon;
let dataDir = "";
let id = "";

before(async () => {
  if (skip) return;
  dataDir = await mkdtemp(join(tmpdir(), "hf-execws-"));
  d = await spawnDaemon(dataDir);
  const c = await d.fetch("POST", "/machines", { name: "execws", vcpu_count: 1, mem_size_mib: 256, start: true });
  assert.equal(c.status, 201, JSON.stringify(c.body));
  id = c.body.id as string;
  // The wait endpoint takes at most 30 s; a loaded TCG host may need more to boot.
  for (let i = 0; ; i++) {
    const w = await d.fetch("GET", `/machines/${id}/wait?status=running&timeout=30`);
    if (w.status === 200) break;
    assert.ok(i < 4 && w.status === 408, JSON.stringify(w.body));
  }
});
after(async () => {
  if (d) await endDaemons([d], dataDir);
  // A daemon that never started leaves its data dir behind otherwise.
  else if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

async function run(start: Record<string, unknown>): Promise<ExecWs> {
  const c = await ExecWs.open(d.url, id);
  c.start(start);
  return c;
}

test("stdout and stderr arrive apart, then the exit code; close 1000", { skip: skip ?? false }, async () => {
  const c = await run({ command: ["sh", "-c", "echo out; echo err >&2; exit 3"], stdin: false });
  const { exit, close } = await c.finished();
  assert.equal(c.stdout.toString(), "out\n");
  assert.equal(c.stderr.toString(), "err\n");
  assert.equal(exit.exit_code, 3);
  assert.equal(exit.signal, null);
  assert.equal(exit.timed_out, false);
  assert.equal(close.code, 1000);
  assert.ok((c.message<{ pid: number }>("started")?.pid ?? 0) > 0);
});

test("stdin: binary messages reach the process, eof ends it (2 MiB byte-identical)", { skip: skip ?? false }, async () => {
  const data = randomBytes(2 * 1024 * 1024);
  const c = await run({ command: ["cat"] });
  for (let off = 0; off < data.length; off += 100_000) c.stdin(data.subarray(off, off + 100_000));
  c.control({ type: "eof" });
  const { exit } = await c.finished(60_000);
  assert.equal(exit.exit_code, 0);
  assert.equal(c.stdout.length, data.length);
  assert.equal(sha(c.stdout), sha(data));
});

test("a signal by name or number goes to the process", { skip: skip ?? false }, async () => {
  const c = await run({ command: ["sh", "-c", "echo ready; exec sleep 60"], stdin: false });
  await c.until(() => c.stdout.toString().includes("ready"));
  c.control({ type: "signal", signal: "SIGTERM" });
  assert.equal((await c.finished()).exit.signal, 15);
  const n = await run({ command: ["sh", "-c", "echo ready; exec sleep 60"], stdin: false });
  await n.until(() => n.stdout.toString().includes("ready"));
  n.control({ type: "signal", signal: 9 });
  assert.equal((await n.finished()).exit.signal, 9);
});

test("tty: one terminal of the given size, resize changes `stty size`, ^C interrupts", { skip: skip ?? false }, async () => {
  const c = await run({ command: ["sh", "-c", "stty size; read x; stty size; [ -t 2 ] && echo tty2"], tty: { rows: 30, cols: 100 } });
  // Typed only once the prompt-less first line is complete: the echo would land inside it otherwise.
  await c.until(() => c.stdout.toString().includes("30 100\r\n"), 20_000, "the first stty size");
  c.control({ type: "resize", rows: 50, cols: 132 });
  c.stdin("go\n");
  const { exit } = await c.finished();
  assert.equal(exit.exit_code, 0, c.stdout.toString());
  assert.match(c.stdout.toString(), /30 100\r\ngo\r\n50 132\r\ntty2\r\n$/);
  assert.equal(c.stderr.length, 0);

  const s = await run({ command: ["sh", "-c", "echo ready; sleep 60; echo not-here"], tty: { rows: 24, cols: 80 } });
  await s.until(() => s.stdout.toString().includes("ready"));
  s.stdin("\x03");
  const r = await s.finished();
  assert.equal(r.exit.signal, 2);
  assert.doesNotMatch(s.stdout.toString(), /not-here/);
});

test("timeout_ms kills the command and says timed_out", { skip: skip ?? false }, async () => {
  const c = await run({ command: ["sleep", "30"], stdin: false, timeout_ms: 500 });
  const { exit } = await c.finished();
  assert.equal(exit.timed_out, true);
  assert.equal(exit.signal, 9);
});

test("errors after the upgrade: an error message with a stable code, close 4000 + its HTTP status", { skip: skip ?? false }, async () => {
  const bad = await run({ cmd: ["ls"] });
  let f = await bad.failed();
  assert.equal(f.error.code, "INVALID_ARGUMENT");
  assert.equal(f.close.code, 4400);

  const noCmd = await run({ command: ["no-such-program-xyz"] });
  f = await noCmd.failed();
  assert.equal(f.error.code, "EXEC_NOT_FOUND");
  assert.match(f.error.message, /no-such-program-xyz/);
  assert.ok(f.close.code >= 4400 && f.close.code < 4600, String(f.close.code));

  const binFirst = await ExecWs.open(d.url, id);
  binFirst.stdin("hello");
  f = await binFirst.failed();
  assert.equal(f.error.code, "INVALID_ARGUMENT");
  assert.equal(f.close.code, 4400);

  const badControl = await run({ command: ["sleep", "30"] });
  await badControl.until(() => badControl.message("started") !== undefined);
  badControl.control({ type: "resize", rows: 0, cols: 10 });
  f = await badControl.failed();
  assert.equal(f.error.code, "INVALID_ARGUMENT");
  assert.equal(f.error.field, "rows");
});

test("errors before the upgrade are plain HTTP: 401, 404 MACHINE_NOT_FOUND; a plain GET is 400", { skip: skip ?? false }, async () => {
  const noKey = await ExecWs.open(d.url, id, { headers: {} }).then(
    () => assert.fail("upgraded without a key"),
    (e: unknown) => e,
  );
  assert.ok(noKey instanceof Refused && noKey.status === 401, String(noKey));
  const unknown = await ExecWs.open(d.url, "vm_00000000000000000000000000").then(
    () => assert.fail("upgraded for an unknown machine"),
    (e: unknown) => e,
  );
  assert.ok(unknown instanceof Refused && unknown.status === 404, String(unknown));
  assert.match((unknown as Refused).body, /MACHINE_NOT_FOUND/);
  const plain = await fetch(`${d.url}/machines/${id}/exec/ws`, { headers: AUTH });
  assert.equal(plain.status, 400);
  assert.equal(((await plain.json()) as { error: { code: string } }).error.code, "INVALID_ARGUMENT");
});

test("a paused machine is 409 MACHINE_PAUSED before the upgrade, as the sync exec", { skip: skip ?? false }, async () => {
  assert.equal((await d.fetch("POST", `/machines/${id}/pause`)).status, 200);
  try {
    const e = await ExecWs.open(d.url, id).then(
      () => assert.fail("upgraded on a paused machine"),
      (err: unknown) => err,
    );
    assert.ok(e instanceof Refused && e.status === 409, String(e));
    assert.match((e as Refused).body, /MACHINE_PAUSED/);
  } finally {
    assert.equal((await d.fetch("POST", `/machines/${id}/resume`)).status, 200);
  }
  const c = await run({ command: ["true"], stdin: false });
  assert.equal((await c.finished()).exit.exit_code, 0);
});

test("a browser authenticates with the bearer.<key> subprotocol and gets hyperfleet.v1 back", { skip: skip ?? false }, async () => {
  const c = await ExecWs.open(d.url, id, { headers: {}, protocols: ["hyperfleet.v1", `bearer.${KEY}`] });
  assert.equal(c.ws.protocol, "hyperfleet.v1");
  c.start({ command: ["echo", "hi"], stdin: false });
  assert.equal((await c.finished()).exit.exit_code, 0);
  assert.equal(c.stdout.toString(), "hi\n");
  const wrong = await ExecWs.open(d.url, id, { headers: {}, protocols: ["hyperfleet.v1", "bearer.wrong"] }).then(
    () => assert.fail("upgraded with a wrong key"),
    (e: unknown) => e,
  );
  assert.ok(wrong instanceof Refused && wrong.status === 401);
});

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m![1]) / 1024;
}

// The client stops reading; the guest keeps writing. Without per-exec flow control the daemon
// would take everything the guest sends and queue it for the socket.
const SLOW_TOTAL = Number(process.env.HF_EXECWS_SLOW_MIB ?? 256) * 1024 * 1024;
const RSS_BOUND_MIB = 96;

test(`a client that stops reading does not grow the daemon (RSS within +${RSS_BOUND_MIB} MiB while the guest offers ${SLOW_TOTAL >> 20} MiB)`, { skip: skip ?? false, timeout: 300_000 }, async (t) => {
  const c = await run({ command: ["head", "-c", String(SLOW_TOTAL), "/dev/zero"], stdin: false });
  c.keepStdout = 0;
  await c.until(() => c.message("started") !== undefined);
  c.ws.pause();
  const base = rssMiB(d.pid);
  let peak = base;
  const t0 = Date.now();
  while (Date.now() - t0 < 10_000) {
    await new Promise((r) => setTimeout(r, 250));
    peak = Math.max(peak, rssMiB(d.pid));
  }
  const stalled = await d.fetch("POST", `/machines/${id}/exec`, { command: ["sh", "-c", "pidof head || echo gone"] });
  t.diagnostic(`daemon RSS ${base.toFixed(0)} MiB -> peak ${peak.toFixed(0)} MiB while paused; head: ${String(stalled.body.stdout).trim()}`);
  assert.ok(peak - base < RSS_BOUND_MIB, `daemon RSS grew by ${(peak - base).toFixed(0)} MiB`);
  assert.match(String(stalled.body.stdout), /^\d+/, "the guest's writer should be held up while the client does not read");
  // Reading again, output flows again; leaving kills the writer.
  const had = c.stdoutBytes;
  c.ws.resume();
  await c.until(() => c.stdoutBytes >= had + 8 * 1024 * 1024, 60_000, "8 MiB more once reading again");
  c.ws.close();
  await c.closed;
  const gone = await until(async () => {
    const r = await d.fetch("POST", `/machines/${id}/exec`, { command: ["sh", "-c", "pidof head || echo gone"] });
    return String(r.body.stdout).trim() === "gone";
  }, 20_000, "the writer to be killed when its client left");
  assert.ok(gone);
});

test("all output arrives, in order and complete, through several windows (~2 MB of seq)", { skip: skip ?? false }, async () => {
  // seq is CPU-bound in a TCG guest (2,000,000 lines took 23-50 s): enough lines for two windows.
  const n = 300_000;
  const c = await run({ command: ["seq", "1", String(n)], stdin: false });
  const { exit } = await c.finished(120_000);
  assert.equal(exit.exit_code, 0);
  const lines = c.stdout.toString().split("\n");
  assert.ok(c.stdout.length > 2 * 1024 * 1024 * 0.9, `only ${c.stdout.length} bytes`);
  assert.equal(lines.length, n + 1);
  assert.ok(lines.every((l, i) => i === n || l === String(i + 1)));
});
