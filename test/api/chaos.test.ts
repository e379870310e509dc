/**
 * A daemon killed in the middle of boots must not leak VMMs (real daemon child processes, real
 * QEMU/TCG, temp data dir):
 * - SIGKILL right after the daemon spawned a QEMU: the restart ends that QEMU, the machine is
 *   failed with a clear reason and starts again; QEMU never sees the daemon's HYPERFLEET_ env;
 * - an adopted VM's death is noticed through its QMP socket closing;
 * - deleting a machine kills a VMM the daemon lost track of before removing its run dir;
 * - chaos: SIGKILL at seeded random points of 20 boots (0-4 s after the start requests); after each restart every QEMU under the
 *   data dir belongs to a running machine, and in the end every machine starts.
 * Cleanup kills daemons and VMs by pid only (pids read from /proc, matched on this data dir).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { alive, json, killLeftoverVmms, qemusUnder, endDaemons, spawnDaemon, startTestDaemon, until, vmSkipReason, type ChildDaemon } from "./helpers.js";

const skip = vmSkipReason();
let dataDir = "";
const daemons: ChildDaemon[] = [];
let d: ChildDaemon;

interface MachineView {
  id: string;
  status: string;
  pid: number | null;
  last_error: { code: string; message: string } | null;
}

async function start(extra: Record<string, string> = {}): Promise<ChildDaemon> {
  d = await spawnDaemon(dataDir, extra);
  daemons.push(d);
  return d;
}

async function crash(c: ChildDaemon): Promise<void> {
  process.kill(c.pid, "SIGKILL");
  await c.exited;
}

async function machine(id: string): Promise<MachineView> {
  const r = await d.fetch("GET", `/machines/${id}`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body as unknown as MachineView;
}

async function machines(): Promise<MachineView[]> {
  const r = await d.fetch("GET", "/machines");
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body as unknown as MachineView[];
}

/** QEMUs under the daemon's run dirs that no running machine has as its pid. */
async function unattachedQemus(): Promise<Array<{ pid: number; id: string }>> {
  const attached = new Set((await machines()).filter((m) => m.status === "running").map((m) => m.pid));
  return qemusUnder(join(dataDir, "machines")).filter((q) => !attached.has(q.pid));
}

/** mulberry32: small, seedable, good enough to pick delays. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

before(async () => {
  if (skip) return;
  dataDir = await mkdtemp(join(tmpdir(), "hf-chaos-"));
});

after(async () => {
  if (skip) return;
  await endDaemons(daemons, dataDir);
});

test("SIGKILL right after a QEMU is spawned: the restart ends it, the machine fails clearly and starts again", { skip: skip ?? false }, async () => {
  await start();
  const r = await d.fetch("POST", "/machines", { name: "early", vcpu_count: 1, mem_size_mib: 128, start: true });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  const id = r.body.id as string;
  const base = join(dataDir, "machines");
  // Poll tightly: the daemon is killed while the QEMU is still starting (before QMP answers).
  let q: { pid: number; id: string } | undefined;
  const deadline = Date.now() + 30_000;
  while (!(q = qemusUnder(base).find((p) => p.id === id)) && Date.now() < deadline) await sleep(1);
  assert.ok(q, "the daemon spawned a QEMU");
  await crash(d);
  const environ = readFileSync(`/proc/${q.pid}/environ`, "utf8").split("\0");
  assert.ok(alive(q.pid), "the QEMU outlived the daemon");

  await start();
  const m = await machine(id);
  assert.ok(m.status === "failed" || m.status === "stopped", `interrupted boot ends failed or stopped, got ${m.status}`);
  if (m.status === "failed") assert.match(m.last_error?.message ?? "", /interrupted by a daemon restart/);
  assert.equal(alive(q.pid), false, "the restart ended the QEMU of the interrupted boot");
  assert.deepEqual(await unattachedQemus(), []);

  const s = await d.fetch("POST", `/machines/${id}/start`);
  assert.equal(s.status, 202, JSON.stringify(s.body));
  const w = await d.fetch("GET", `/machines/${id}/wait?status=running&timeout=30`);
  assert.equal(w.status, 200, JSON.stringify(w.body));
  assert.equal(w.body.status, "running", JSON.stringify(w.body));
  assert.deepEqual(environ.filter((v) => v.startsWith("HYPERFLEET_")), [], "QEMU does not get the daemon's environment (API key)");
});

test("an adopted VM's death is noticed through its QMP socket closing", { skip: skip ?? false }, async () => {
  const [m] = await machines();
  assert.equal(m?.status, "running");
  await crash(d);
  await start();
  const adopted = await machine(m!.id);
  assert.equal(adopted.status, "running");
  assert.equal(adopted.pid, m!.pid, "the same QEMU, adopted");
  const t0 = performance.now();
  process.kill(m!.pid!, "SIGKILL");
  await until(async () => (await machine(m!.id)).status === "failed", 10_000, "the daemon to mark the machine failed");
  const ms = performance.now() - t0;
  const line = d.output().split("\n").find((l) => l.includes("VMM exited on its own") && l.includes(m!.id));
  assert.ok(line, d.output().slice(-2000));
  assert.match(line, /"detected_by":"qmp-close"/);
  console.log(`adopted VM marked failed ${ms.toFixed(0)} ms after its QEMU was killed (includes 100 ms polling of the API)`);
  const del = await d.fetch("DELETE", `/machines/${m!.id}`);
  assert.equal(del.status, 204);
});

test("deleting a machine kills a VMM the daemon lost track of before removing its run dir", { skip: skip ?? false }, async () => {
  const t = await startTestDaemon();
  try {
    const r = await t.req("POST", "/machines", { name: "lost", vcpu_count: 1, mem_size_mib: 128, start: true });
    assert.equal(r.statusCode, 201, r.body);
    const id = json(r).id as string;
    const w = await t.req("GET", `/machines/${id}/wait?status=running&timeout=30`);
    assert.equal(json(w).status, "running", w.body);
    const pid = json(w).pid as number;
    // What a crash used to leave: a QEMU in the machine's run dir that no in-memory Machine holds.
    assert.ok(t.daemon.service.live.take(id));
    const del = await t.req("DELETE", `/machines/${id}`);
    assert.equal(del.statusCode, 204, del.body);
    assert.equal(alive(pid), false, "the untracked QEMU was killed with its machine");
    assert.equal(existsSync(join(t.dataDir, "machines", id)), false);
  } finally {
    killLeftoverVmms(t.dataDir);
    await t.close();
  }
});

test("chaos: SIGKILL at random points of 20 boots leaks no VMM, and every machine starts again", { skip: skip ?? false }, async () => {
  const seed = Number(process.env.CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31));
  console.log(`chaos seed ${seed} (rerun with CHAOS_SEED=${seed})`);
  const rand = rng(seed);
  // Up to 20 machines run at the end (128 MiB each): admission control must not be what is tested here.
  const env = { HYPERFLEET_MAX_CONCURRENT_BOOTS: "4", HYPERFLEET_MAX_VCPUS: "64", HYPERFLEET_MAX_MEMORY_MIB: "16384" };
  if (d.proc.exitCode === null && d.proc.signalCode === null) await crash(d);
  await start(env);
  let adopted = 0;
  let strays = 0;
  const rounds = 5;
  const perRound = 4;
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < perRound; i++) {
      const r = await d.fetch("POST", "/machines", { name: `chaos-${round}-${i}`, vcpu_count: 1, mem_size_mib: 128, start: true });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      await sleep(Math.floor(rand() * 300));
    }
    // Up to 4 s: under TCG with four boots at once on a busy host, some have finished by then and
    // are adopted; shorter delays catch boots before the spawn, in QEMU's startup and in the guest.
    const delay = Math.floor(rand() * 4000);
    await sleep(delay);
    await crash(d);
    await start(env);
    const all = await machines();
    const statuses = all.map((m) => m.status);
    const reconciled = /"adopted":(\d+),.*"strays":(\d+)/.exec(d.output());
    adopted += Number(reconciled?.[1] ?? 0);
    strays += Number(reconciled?.[2] ?? 0);
    console.log(`round ${round}: killed ${delay} ms after the last start request; restart adopted ${reconciled?.[1]}, killed ${reconciled?.[2]} untracked QEMU; now ${JSON.stringify(count(statuses))}`);
    for (const m of all) {
      assert.ok(["running", "stopped", "failed"].includes(m.status), `${m.id} settled, got ${m.status}`);
      if (m.status === "failed") assert.ok(m.last_error && m.last_error.message.length > 0, `${m.id} says why it failed`);
    }
    assert.deepEqual(await unattachedQemus(), [], `round ${round}: every QEMU belongs to a running machine`);
  }

  // Not vacuous: some kills must have caught a QEMU mid-boot (4 spawn within ~0.3 s of each start).
  assert.ok(strays > 0, "at least one restart found a QEMU of an interrupted boot");
  console.log(`over ${rounds} restarts: ${strays} QEMU of interrupted boots killed, ${adopted} adoptions of running VMs`);

  // Every machine starts (a leaked QEMU would hold its disk's write lock), four at a time.
  const down = (await machines()).filter((m) => m.status !== "running").map((m) => m.id);
  for (let i = 0; i < down.length; i += 4) {
    const batch = down.slice(i, i + 4);
    for (const id of batch) {
      const s = await d.fetch("POST", `/machines/${id}/start`);
      assert.equal(s.status, 202, JSON.stringify(s.body));
    }
    for (const id of batch) {
      const w = await d.fetch("GET", `/machines/${id}/wait?status=running&timeout=30`);
      assert.equal(w.body.status, "running", JSON.stringify(w.body));
    }
  }
  assert.deepEqual(await unattachedQemus(), []);
  for (const m of await machines()) {
    const del = await d.fetch("DELETE", `/machines/${m.id}`);
    assert.equal(del.status, 204, JSON.stringify(del.body));
  }
  assert.deepEqual(qemusUnder(join(dataDir, "machines")), [], "deleting every machine leaves no QEMU");
});

function count(xs: string[]): Record<string, number> {
  const c: Record<string, number> = {};
  for (const x of xs) c[x] = (c[x] ?? 0) + 1;
  return c;
}
