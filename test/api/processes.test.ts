/**
 * Background processes through the HTTP API against a real daemon process and a real VM: start,
 * list, output (whole and followed), signal, the error codes, and a SIGKILLed daemon whose
 * successor still lists, reads and signals the process (the state is in the guest).
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { AUTH, endDaemons, spawnDaemon, until, vmSkipReason, type ChildDaemon } from "./helpers.js";

const skip = vmSkipReason();
const daemons: ChildDaemon[] = [];
let d: ChildDaemon;
let dataDir = "";
let id = "";

type Proc = { pid: number; command: string[]; status: string; exit_code: number | null; signal: number | null; started_at: string; exited_at: string | null };

async function waitRunning(): Promise<void> {
  for (let i = 0; ; i++) {
    const w = await d.fetch("GET", `/machines/${id}/wait?status=running&timeout=30`);
    if (w.status === 200) return;
    assert.ok(i < 4 && w.status === 408, JSON.stringify(w.body));
  }
}

before(async () => {
  if (skip) return;
  dataDir = await mkdtemp(join(tmpdir(), "hf-procs-"));
  d = await spawnDaemon(dataDir);
  daemons.push(d);
  const c = await d.fetch("POST", "/machines", { name: "procs", vcpu_count: 1, mem_size_mib: 256, start: true });
  assert.equal(c.status, 201, JSON.stringify(c.body));
  id = c.body.id as string;
  await waitRunning();
});
after(async () => {
  if (daemons.length) await endDaemons(daemons, dataDir);
  // A daemon that never started leaves its data dir behind otherwise.
  else if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

async function start(command: string[]): Promise<Proc> {
  const r = await d.fetch("POST", `/machines/${id}/processes`, { command });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body as unknown as Proc;
}

async function list(): Promise<Proc[]> {
  const r = await d.fetch("GET", `/machines/${id}/processes`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return (r.body as { processes: Proc[] }).processes;
}

async function output(pid: number, query = ""): Promise<{ status: number; text: string }> {
  const r = await fetch(`${d.url}/machines/${id}/processes/${pid}/output${query}`, { headers: AUTH });
  return { status: r.status, text: await r.text() };
}

test("start answers with the running process; list shows it; its output is readable", { skip: skip ?? false }, async () => {
  const p = await start(["sh", "-c", "echo hello; echo oops >&2; exec sleep 300"]);
  assert.ok(p.pid > 1);
  assert.equal(p.status, "running");
  assert.deepEqual(p.command, ["sh", "-c", "echo hello; echo oops >&2; exec sleep 300"]);
  const listed = (await list()).find((x) => x.pid === p.pid);
  assert.equal(listed?.status, "running");
  const out = await until(async () => {
    const o = await output(p.pid);
    return o.text.includes("oops") ? o : null;
  }, 10_000, "the process's output");
  assert.equal(out.status, 200);
  assert.equal(out.text, "hello\noops\n");
});

test("follow streams the output until the process exits; list then says exited with its code", { skip: skip ?? false }, async () => {
  const p = await start(["sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.3; done; exit 4"]);
  const o = await output(p.pid, "?follow=true");
  assert.equal(o.status, 200);
  assert.match(o.text, /^line1\nline2\nline3\n\[hyperfleet\] process \d+ exited with code 4\n$/);
  const listed = (await list()).find((x) => x.pid === p.pid)!;
  assert.equal(listed.status, "exited");
  assert.equal(listed.exit_code, 4);
  assert.ok(listed.exited_at);
});

test("signal ends a running process (its group); then 409 PROCESS_NOT_RUNNING; unknown pid 404", { skip: skip ?? false }, async () => {
  const p = await start(["sh", "-c", "sleep 300; echo not-reached"]);
  const s = await d.fetch("POST", `/machines/${id}/processes/${p.pid}/signal`, { signal: "SIGTERM" });
  assert.equal(s.status, 200, JSON.stringify(s.body));
  const ended = await until(async () => (await list()).find((x) => x.pid === p.pid && x.status === "exited"), 10_000, "the process to exit");
  assert.equal(ended.signal, 15);
  assert.equal(ended.exit_code, null);
  const again = await d.fetch("POST", `/machines/${id}/processes/${p.pid}/signal`, { signal: 9 });
  assert.equal(again.status, 409);
  assert.equal((again.body as { error: { code: string } }).error.code, "PROCESS_NOT_RUNNING");
  const none = await d.fetch("POST", `/machines/${id}/processes/99999/signal`, { signal: 9 });
  assert.equal(none.status, 404);
  assert.equal((none.body as { error: { code: string } }).error.code, "PROCESS_NOT_FOUND");
  assert.equal((await output(99999)).status, 404);
});

test("bad requests: tty is 422 NOT_SUPPORTED_YET, a missing program EXEC_NOT_FOUND, a bad signal 400", { skip: skip ?? false }, async () => {
  const tty = await d.fetch("POST", `/machines/${id}/processes`, { command: ["sh"], tty: { rows: 24, cols: 80 } });
  assert.equal(tty.status, 422);
  assert.equal((tty.body as { error: { code: string } }).error.code, "NOT_SUPPORTED_YET");
  const missing = await d.fetch("POST", `/machines/${id}/processes`, { command: ["no-such-program-xyz"] });
  assert.equal((missing.body as { error: { code: string } }).error.code, "EXEC_NOT_FOUND");
  const badSig = await d.fetch("POST", `/machines/${id}/processes/1/signal`, { signal: "SIGNOPE" });
  assert.equal(badSig.status, 400);
  assert.equal((badSig.body as { error: { field?: string } }).error.field, "signal");
});

test("a SIGKILLed daemon's successor still lists, reads and signals the process", { skip: skip ?? false }, async () => {
  const p = await start(["sh", "-c", "echo survivor; exec sleep 300"]);
  d.proc.kill("SIGKILL");
  await d.exited;
  d = await spawnDaemon(dataDir);
  daemons.push(d);
  await waitRunning();
  const listed = (await list()).find((x) => x.pid === p.pid);
  assert.equal(listed?.status, "running");
  assert.equal((await output(p.pid)).text, "survivor\n");
  const s = await d.fetch("POST", `/machines/${id}/processes/${p.pid}/signal`, { signal: 9 });
  assert.equal(s.status, 200, JSON.stringify(s.body));
  const ended = await until(async () => (await list()).find((x) => x.pid === p.pid && x.status === "exited"), 10_000, "the process to exit");
  assert.equal(ended.signal, 9);
});
