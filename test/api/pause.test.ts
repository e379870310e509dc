/**
 * Pause and resume through the HTTP API against real VMs: a paused machine refuses exec, files and
 * logs (409 MACHINE_PAUSED) without asking its frozen agent; resume brings exec back with the guest
 * clock set from the host's; stop and delete work from paused; a daemon restart (SIGKILL) adopts a
 * paused VM as paused, and it resumes. One VM at a time; cleanup kills daemons and VMs by pid only.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { alive, json, endDaemons, spawnDaemon, startTestDaemon, until, vmSkipReason, type ChildDaemon, type TestDaemon } from "./helpers.js";

const skip = vmSkipReason();
let t: TestDaemon;
let id = "";
/** A paused guest must not be left to answer: the refusal comes from the daemon, well within this. */
const REFUSAL_MS = 2_000;
const PAUSED_FOR_MS = 5_000;

type Machine = { id: string; status: string; pid: number | null; last_error: { code: string } | null };
type ErrorBody = { error: { code: string; current_status?: string } };

before(async () => {
  if (skip) return;
  t = await startTestDaemon();
});
after(async () => {
  if (t) await t.close();
});

async function waitFor(status: string): Promise<Machine> {
  const r = await t.req("GET", `/machines/${id}/wait?status=${status}&timeout=30`);
  assert.equal(r.statusCode, 200, r.body);
  return json<Machine>(r);
}

async function bootOne(name: string): Promise<Machine> {
  const c = await t.req("POST", "/machines", { name, vcpu_count: 1, mem_size_mib: 256, start: true });
  assert.equal(c.statusCode, 201, c.body);
  id = json<Machine>(c).id;
  return waitFor("running");
}

async function action(a: string, expect: number): Promise<ErrorBody & Machine> {
  const r = await t.req("POST", `/machines/${id}/${a}`);
  assert.equal(r.statusCode, expect, `${a}: ${r.body}`);
  return json(r);
}

test("pause refuses exec, files and logs; resume brings exec back with the guest clock right", { skip: skip ?? false }, async (ctx) => {
  await bootOne("pause-a");
  assert.equal(json<ErrorBody>(await t.req("POST", `/machines/${id}/resume`)).error.code, "INVALID_STATE_TRANSITION", "resume of a running machine");

  const t0 = Date.now();
  const p = await action("pause", 200);
  const pauseMs = Date.now() - t0;
  assert.equal(p.status, "paused");
  assert.equal((await waitFor("paused")).status, "paused");
  assert.equal((await action("pause", 409)).error.code, "INVALID_STATE_TRANSITION");
  assert.equal((await action("restart", 409)).error.code, "INVALID_STATE_TRANSITION");

  const refused: Array<[string, string, unknown?]> = [
    ["POST", `/machines/${id}/exec`, { command: ["true"] }],
    ["GET", `/machines/${id}/files?path=/etc/hostname`],
    ["GET", `/machines/${id}/files/stat?path=/etc/hostname`],
    ["POST", `/machines/${id}/files`, { path: "/tmp/x", content: "" }],
    ["GET", `/machines/${id}/logs`],
  ];
  for (const [method, url, body] of refused) {
    const s = Date.now();
    const r = await t.req(method, url, body);
    assert.equal(r.statusCode, 409, `${method} ${url}: ${r.body}`);
    assert.equal(json<ErrorBody>(r).error.code, "MACHINE_PAUSED", `${method} ${url}`);
    assert.equal(json<ErrorBody>(r).error.current_status, "paused");
    assert.ok(Date.now() - s < REFUSAL_MS, `${method} ${url} answered at once`);
  }

  await sleep(PAUSED_FOR_MS);
  const t1 = Date.now();
  const r = await action("resume", 200);
  const resumeMs = Date.now() - t1;
  assert.equal(r.status, "running");
  const e = await t.req("POST", `/machines/${id}/exec`, { command: ["date", "+%s"] });
  assert.equal(e.statusCode, 200, e.body);
  const guest = Number(json<{ stdout: string }>(e).stdout.trim());
  const host = Date.now() / 1000;
  ctx.diagnostic(`pause ${pauseMs} ms, resume ${resumeMs} ms (clock set included), guest clock ${(guest - host).toFixed(1)} s from the host's`);
  // `date +%s` truncates: the guest may read up to 1 s lower than a host sampled after it.
  assert.ok(Math.abs(guest - host) <= 2, `guest clock ${guest} vs host ${host.toFixed(1)}`);
});

test("stop from paused powers the guest off; delete from paused kills it", { skip: skip ?? false }, async () => {
  await action("pause", 200);
  const s = await action("stop", 202);
  assert.equal(s.status, "stopping");
  const stopped = await waitFor("stopped");
  assert.equal(stopped.last_error, null);
  assert.equal(stopped.pid, null);

  assert.equal((await action("start", 202)).status, "starting");
  const m = await waitFor("running");
  await action("pause", 200);
  const d = await t.req("DELETE", `/machines/${id}`);
  assert.equal(d.statusCode, 204, d.body);
  assert.equal(alive(m.pid!), false, "the paused VMM is gone");
  assert.equal(json<ErrorBody>(await t.req("POST", `/machines/${id}/pause`)).error.code, "MACHINE_NOT_FOUND");
  assert.equal((await t.req("POST", `/machines/${id}/resume`)).statusCode, 404);
});

test("a daemon restart keeps a paused machine paused, and it resumes", { skip: skip ?? false }, async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "hf-pause-"));
  const daemons: ChildDaemon[] = [];
  try {
    let d = await spawnDaemon(dataDir);
    daemons.push(d);
    const c = await d.fetch("POST", "/machines", { name: "pause-restart", vcpu_count: 1, mem_size_mib: 256, start: true });
    assert.equal(c.status, 201, JSON.stringify(c.body));
    const mid = c.body.id as string;
    const w = await d.fetch("GET", `/machines/${mid}/wait?status=running&timeout=30`);
    assert.equal(w.status, 200, JSON.stringify(w.body));
    const pid = w.body.pid as number;
    assert.equal((await d.fetch("POST", `/machines/${mid}/pause`)).status, 200);

    process.kill(d.pid, "SIGKILL");
    await d.exited;
    assert.ok(alive(pid), "the paused VM outlives the daemon");
    d = await spawnDaemon(dataDir);
    daemons.push(d);
    const g = await d.fetch("GET", `/machines/${mid}`);
    assert.equal(g.body.status, "paused", JSON.stringify(g.body));
    assert.equal(g.body.pid, pid);
    assert.equal(((await d.fetch("POST", `/machines/${mid}/exec`, { command: ["true"] })).body as unknown as ErrorBody).error.code, "MACHINE_PAUSED");

    const r = await d.fetch("POST", `/machines/${mid}/resume`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.status, "running");
    const e = await d.fetch("POST", `/machines/${mid}/exec`, { command: ["echo", "back"] });
    assert.equal(e.status, 200, JSON.stringify(e.body));
    assert.equal(e.body.stdout, "back\n");
    assert.equal((await d.fetch("DELETE", `/machines/${mid}`)).status, 204);
    await until(async () => !alive(pid), 10_000, "the VMM to be gone");
  } finally {
    await endDaemons(daemons, dataDir);
  }
});
