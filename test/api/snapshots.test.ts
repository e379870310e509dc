/**
 * Snapshots, clones, forks and suspend through the HTTP API against real VMs (docs/adr/0009):
 * a file written before a snapshot is in its clones; a file written in one clone is in neither the
 * other nor the source; clones read different random bytes and have their own hostnames; a
 * snapshot in use cannot be deleted; a fork of 10; suspend ends the VMM and resume brings back a
 * process started before it (same PID); a daemon SIGKILL with clones running and a machine
 * suspended, then a restart, adopts the clones and keeps the suspended machine restorable; a
 * daemon that died mid-suspend or mid-snapshot is sorted out at restart.
 * Few cold boots (TCG); clones are cheap restores. Cleanup kills daemons and VMs by pid only.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStore } from "../../src/store/index.js";
import { alive, json, endDaemons, spawnDaemon, startTestDaemon, until, vmSkipReason, type ChildDaemon, type TestDaemon } from "./helpers.js";

const skip = vmSkipReason();
let t: TestDaemon;

type Machine = { id: string; name: string; status: string; pid: number | null; snapshot_id: string | null; last_error: { code: string; message: string } | null };
type Snapshot = { id: string; machine_id: string; size_bytes: number; created_at: string; vcpu_count: number; mem_size_mib: number; network: boolean };
type ErrorBody = { error: { code: string; field?: string; current_status?: string; machines?: string[] } };
type Exec = { exit_code: number; stdout: string; stderr: string };

before(async () => {
  if (skip) return;
  // Eleven 1-vCPU machines at once (a fork of 10 and its source): more than this host's default budget.
  t = await startTestDaemon({ HYPERFLEET_MAX_VCPUS: "64" });
});
after(async () => {
  if (t) await t.close();
});

async function waitFor(id: string, status: string): Promise<Machine> {
  const r = await t.req("GET", `/machines/${id}/wait?status=${status}&timeout=30`);
  assert.equal(r.statusCode, 200, `${id} -> ${status}: ${r.body}`);
  return json<Machine>(r);
}

async function sh(id: string, script: string): Promise<Exec> {
  const r = await t.req("POST", `/machines/${id}/exec`, { command: ["sh", "-c", script] });
  assert.equal(r.statusCode, 200, `${id}: ${script}: ${r.body}`);
  return json<Exec>(r);
}

async function create(body: Record<string, unknown>): Promise<Machine> {
  const r = await t.req("POST", "/machines", body);
  assert.equal(r.statusCode, 201, r.body);
  return json<Machine>(r);
}

async function snapshotOf(id: string): Promise<Snapshot> {
  const r = await t.req("POST", `/machines/${id}/snapshots`);
  assert.equal(r.statusCode, 201, r.body);
  return json<Snapshot>(r);
}

let source = "";

test("clones of a snapshot: files before it, isolated disks, own hostname and RNG; in-use delete is 409", { skip: skip ?? false }, async (ctx) => {
  source = (await create({ name: "snap-src", vcpu_count: 1, mem_size_mib: 256, start: true })).id;
  await waitFor(source, "running");
  assert.equal((await sh(source, "echo before > /root/before.txt && sync")).exit_code, 0);

  const snap = await snapshotOf(source);
  assert.match(snap.id, /^snap_[0-9A-HJKMNP-TV-Z]{26}$/);
  assert.equal(snap.machine_id, source);
  assert.ok(snap.size_bytes > 0, "the snapshot holds files");
  assert.equal(snap.vcpu_count, 1);
  assert.equal(snap.mem_size_mib, 256);
  assert.equal((await t.req("GET", `/machines/${source}`)).statusCode, 200);
  assert.equal(json<Machine>(await t.req("GET", `/machines/${source}`)).status, "running", "the source goes on");
  assert.deepEqual(json<Snapshot[]>(await t.req("GET", "/snapshots")).map((s) => s.id), [snap.id]);
  assert.equal(json<Snapshot>(await t.req("GET", `/snapshots/${snap.id}`)).id, snap.id);
  for (const bogus of ["snap_00000000000000000000000000", "nope"]) {
    const r = await t.req("GET", `/snapshots/${bogus}`);
    assert.equal(r.statusCode, 404, r.body);
    assert.equal(json<ErrorBody>(r).error.code, "SNAPSHOT_NOT_FOUND");
  }

  const t0 = Date.now();
  const a = await create({ name: "clone-a", snapshot: snap.id, start: true });
  const b = await create({ name: "clone-b", snapshot: snap.id, start: true, env: { WHO: "b" } });
  assert.equal(a.snapshot_id, snap.id);
  await waitFor(a.id, "running");
  await waitFor(b.id, "running");
  ctx.diagnostic(`two clones running ${Date.now() - t0} ms after their create`);

  for (const c of [a, b]) assert.equal((await sh(c.id, "cat /root/before.txt")).stdout, "before\n", `${c.name} has the file written before the snapshot`);
  assert.equal((await sh(a.id, "echo only-a > /root/a.txt && sync")).exit_code, 0);
  for (const other of [b.id, source]) assert.equal((await sh(other, "test -e /root/a.txt; echo $?")).stdout, "1\n", `a's file is not in ${other}`);

  const hostA = (await sh(a.id, "hostname")).stdout.trim();
  const hostB = (await sh(b.id, "hostname")).stdout.trim();
  assert.equal(hostA, a.id);
  assert.equal(hostB, b.id);
  const rnd = "head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'";
  const [ra, rb] = [(await sh(a.id, rnd)).stdout, (await sh(b.id, rnd)).stdout];
  assert.equal(ra.length, 64);
  assert.notEqual(ra, rb, "two clones draw different random bytes");
  const guest = Number((await sh(b.id, "date +%s")).stdout.trim());
  assert.ok(Math.abs(guest - Date.now() / 1000) <= 2, `a clone's clock is the host's (${guest})`);

  const inUse = await t.req("DELETE", `/snapshots/${snap.id}`);
  assert.equal(inUse.statusCode, 409, inUse.body);
  assert.equal(json<ErrorBody>(inUse).error.code, "SNAPSHOT_IN_USE");
  assert.deepEqual(json<ErrorBody>(inUse).error.machines, [a.id, b.id].sort());

  for (const [field, body] of [
    ["vcpu_count", { vcpu_count: 2 }],
    ["mem_size_mib", { mem_size_mib: 512 }],
    ["network", { network: {} }],
  ] as const) {
    const r = await t.req("POST", "/machines", { name: `bad-${field.replace(/_/g, "-")}`, snapshot: snap.id, ...body });
    assert.equal(r.statusCode, 400, r.body);
    assert.equal(json<ErrorBody>(r).error.code, "SNAPSHOT_INCOMPATIBLE");
    assert.equal(json<ErrorBody>(r).error.field, field);
  }
  const missing = await t.req("POST", "/machines", { name: "no-snap", snapshot: "snap_00000000000000000000000000" });
  assert.equal(json<ErrorBody>(missing).error.code, "SNAPSHOT_NOT_FOUND");
  const noShape = await t.req("POST", "/machines", { name: "no-shape" });
  assert.equal(noShape.statusCode, 400, noShape.body);

  for (const c of [a, b]) assert.equal((await t.req("DELETE", `/machines/${c.id}`)).statusCode, 204);
  assert.equal((await t.req("DELETE", `/snapshots/${snap.id}`)).statusCode, 204);
  assert.equal((await t.req("GET", `/snapshots/${snap.id}`)).statusCode, 404);
  assert.deepEqual(await readdir(join(t.dataDir, "snapshots")), [], "the snapshot's files are gone");
});

test("fork of 10: ten clones with their own hostnames; their snapshot goes with the last", { skip: skip ?? false }, async (ctx) => {
  const t0 = Date.now();
  const r = await t.req("POST", `/machines/${source}/fork`, { count: 10 });
  assert.equal(r.statusCode, 201, r.body);
  const clones = json<Machine[]>(r);
  assert.equal(clones.length, 10);
  for (const c of clones) await waitFor(c.id, "running");
  ctx.diagnostic(`fork of 10: all running ${Date.now() - t0} ms after the request`);
  const names = new Set<string>();
  for (const c of clones) names.add((await sh(c.id, "hostname; cat /root/before.txt")).stdout);
  assert.equal(names.size, 10, "ten different hostnames, each with the source's file");
  assert.deepEqual(json<Snapshot[]>(await t.req("GET", "/snapshots")), [], "a fork's snapshot is not listed");
  for (const c of clones) assert.equal((await t.req("DELETE", `/machines/${c.id}`)).statusCode, 204);
  assert.deepEqual(await readdir(join(t.dataDir, "snapshots")), [], "the fork's snapshot went with its last clone");
  assert.equal((await sh(source, "echo alive")).stdout, "alive\n");
});

test("suspend ends the VMM; resume brings back a process started before it, same PID", { skip: skip ?? false }, async (ctx) => {
  const started = await sh(source, "setsid sleep 1000 </dev/null >/dev/null 2>&1 & echo $!");
  const sleepPid = Number(started.stdout.trim());
  assert.ok(sleepPid > 1, started.stdout);
  const vmmPid = json<Machine>(await t.req("GET", `/machines/${source}`)).pid!;

  const t0 = Date.now();
  const s = await t.req("POST", `/machines/${source}/suspend`);
  const suspendMs = Date.now() - t0;
  assert.equal(s.statusCode, 200, s.body);
  assert.equal(json<Machine>(s).status, "suspended");
  assert.equal(json<Machine>(s).pid, null);
  assert.equal(alive(vmmPid), false, "the VMM process is gone");
  const refused = await t.req("POST", `/machines/${source}/exec`, { command: ["true"] });
  assert.equal(refused.statusCode, 409);
  assert.equal(json<ErrorBody>(refused).error.code, "MACHINE_NOT_RUNNING");

  const t1 = Date.now();
  const r = await t.req("POST", `/machines/${source}/resume`);
  const resumeMs = Date.now() - t1;
  assert.equal(r.statusCode, 200, r.body);
  assert.equal(json<Machine>(r).status, "running");
  assert.equal((await sh(source, `cat /proc/${sleepPid}/comm`)).stdout, "sleep\n", "the sleep started before the suspend is alive");
  const guest = Number((await sh(source, "date +%s")).stdout.trim());
  assert.ok(Math.abs(guest - Date.now() / 1000) <= 2, `the clock is right after resume (${guest})`);
  ctx.diagnostic(`suspend ${suspendMs} ms, resume ${resumeMs} ms`);

  // A stop throws the saved state away: the next start is a fresh boot.
  assert.equal((await t.req("POST", `/machines/${source}/suspend`)).statusCode, 200);
  const st = await t.req("POST", `/machines/${source}/stop`);
  assert.equal(st.statusCode, 202, st.body);
  assert.equal(json<Machine>(st).status, "stopped");
  assert.equal((await t.req("POST", `/machines/${source}/start`)).statusCode, 202);
  await waitFor(source, "running");
  assert.equal((await sh(source, "grep -lx sleep /proc/[0-9]*/comm 2>/dev/null | wc -l")).stdout.trim(), "0", "a fresh boot: no sleep from before");
  assert.equal((await sh(source, "cat /root/before.txt")).stdout, "before\n", "its disk is kept");
});

test("a daemon SIGKILL with clones running and a machine suspended: the restart adopts and keeps them", { skip: skip ?? false }, async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "hf-snap-"));
  const daemons: ChildDaemon[] = [];
  try {
    let d = await spawnDaemon(dataDir, { HYPERFLEET_MAX_VCPUS: "64" });
    daemons.push(d);
    const c = await d.fetch("POST", "/machines", { name: "src", vcpu_count: 1, mem_size_mib: 256, start: true });
    assert.equal(c.status, 201, JSON.stringify(c.body));
    const src = c.body.id as string;
    assert.equal((await d.fetch("GET", `/machines/${src}/wait?status=running&timeout=30`)).status, 200);
    const fork = await d.fetch("POST", `/machines/${src}/fork`, { count: 3 });
    assert.equal(fork.status, 201, JSON.stringify(fork.body));
    const clones = (fork.body as unknown as Machine[]).map((m) => m.id);
    const pids = new Map<string, number>();
    for (const id of clones) {
      const w = await d.fetch("GET", `/machines/${id}/wait?status=running&timeout=30`);
      assert.equal(w.status, 200, JSON.stringify(w.body));
      pids.set(id, w.body.pid as number);
    }
    assert.equal((await d.fetch("POST", `/machines/${src}/suspend`)).status, 200);

    process.kill(d.pid, "SIGKILL");
    await d.exited;
    d = await spawnDaemon(dataDir, { HYPERFLEET_MAX_VCPUS: "64" });
    daemons.push(d);
    for (const id of clones) {
      const g = await d.fetch("GET", `/machines/${id}`);
      assert.equal(g.body.status, "running", JSON.stringify(g.body));
      assert.equal(g.body.pid, pids.get(id), "the same VMM, adopted");
      const e = await d.fetch("POST", `/machines/${id}/exec`, { command: ["hostname"] });
      assert.equal(e.status, 200, JSON.stringify(e.body));
      assert.equal(e.body.stdout, `${id}\n`);
    }
    assert.equal((await d.fetch("GET", `/machines/${src}`)).body.status, "suspended");
    const r = await d.fetch("POST", `/machines/${src}/resume`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal((await d.fetch("POST", `/machines/${src}/exec`, { command: ["echo", "back"] })).body.stdout, "back\n");
    for (const id of [...clones, src]) assert.equal((await d.fetch("DELETE", `/machines/${id}`)).status, 204);
    await until(async () => [...pids.values()].every((p) => !alive(p)), 10_000, "the clones' VMMs to be gone");
    assert.deepEqual(await readdir(join(dataDir, "snapshots")), [], "the fork's snapshot went with its clones");
  } finally {
    await endDaemons(daemons, dataDir);
  }
});

test("a daemon that died between saving a suspend and recording it, or mid-snapshot, is sorted out at restart", { skip: skip ?? false }, async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "hf-snap-crash-"));
  const daemons: ChildDaemon[] = [];
  try {
    let d = await spawnDaemon(dataDir);
    daemons.push(d);
    const c = await d.fetch("POST", "/machines", { name: "crash", vcpu_count: 1, mem_size_mib: 256, start: true });
    const id = c.body.id as string;
    assert.equal((await d.fetch("GET", `/machines/${id}/wait?status=running&timeout=30`)).status, 200);
    const started = await d.fetch("POST", `/machines/${id}/exec`, { command: ["sh", "-c", "setsid sleep 1000 </dev/null >/dev/null 2>&1 & echo $!"] });
    const sleepPid = Number(String(started.body.stdout).trim());
    const pid = (await d.fetch("GET", `/machines/${id}`)).body.pid as number;
    assert.equal((await d.fetch("POST", `/machines/${id}/suspend`)).status, 200);
    process.kill(d.pid, "SIGKILL");
    await d.exited;

    // What the store said before the suspend was recorded (the VMM already gone), and a snapshot
    // directory whose record was never written.
    const store = await openStore({ path: join(dataDir, "hyperfleet.db") });
    assert.ok(await store.machines.transition(id, ["suspended"], "running", { pid, restoreFrom: null }));
    await store.close();
    const half = join(dataDir, "snapshots", "snap_01M93TZZZZZZZZZZZZZZZZZZZZ");
    await mkdir(half, { recursive: true });
    await writeFile(join(half, "state.tmp"), "half");

    d = await spawnDaemon(dataDir);
    daemons.push(d);
    const g = await d.fetch("GET", `/machines/${id}`);
    assert.equal(g.body.status, "suspended", JSON.stringify(g.body));
    assert.equal(existsSync(half), false, "the unfinished snapshot is removed");
    const r = await d.fetch("POST", `/machines/${id}/resume`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const e = await d.fetch("POST", `/machines/${id}/exec`, { command: ["cat", `/proc/${sleepPid}/comm`] });
    assert.equal(e.body.stdout, "sleep\n", "its processes came back");

    // A daemon that died during the restore of a suspend: the guest may have run on its disk, so
    // the saved memory is not used again; the next start boots afresh.
    assert.equal((await d.fetch("POST", `/machines/${id}/suspend`)).status, 200);
    process.kill(d.pid, "SIGKILL");
    await d.exited;
    const s2 = await openStore({ path: join(dataDir, "hyperfleet.db") });
    const rec = await s2.machines.get(id);
    assert.ok(await s2.machines.transition(id, ["suspended"], "starting", {}));
    await s2.close();
    await rm(join(rec!.runDir, "suspend", "snapshot.json"));
    d = await spawnDaemon(dataDir);
    daemons.push(d);
    assert.equal((await d.fetch("GET", `/machines/${id}`)).body.status, "failed", "a restore cut short by the restart");
    assert.equal((await d.fetch("POST", `/machines/${id}/start`)).status, 202);
    assert.equal((await d.fetch("GET", `/machines/${id}/wait?status=running&timeout=30`)).status, 200);
    const fresh = await d.fetch("POST", `/machines/${id}/exec`, { command: ["sh", "-c", "grep -lx sleep /proc/[0-9]*/comm 2>/dev/null | wc -l"] });
    assert.equal(String(fresh.body.stdout).trim(), "0", "a fresh boot, not the old memory");
    assert.equal((await d.fetch("DELETE", `/machines/${id}`)).status, 204);
  } finally {
    await endDaemons(daemons, dataDir);
  }
});
