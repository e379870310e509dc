/**
 * Restart safety with the real daemon as a child process (loopback port, temp data dir):
 * - SIGKILL while two VMs run: the next daemon re-adopts the same VMs (same pid, same boot, same
 *   tmpfs contents) and they answer exec;
 * - a QEMU killed while the daemon is down is reported failed; an orphaned run dir is removed;
 * - SIGTERM leaves VMs running; with HYPERFLEET_STOP_VMS_ON_EXIT=true it stops them.
 * Cleanup kills daemons and VMs by pid only.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, existsSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ulid } from "ulid";
import { pidAlive, endDaemons, spawnDaemon, until, vmSkipReason, type ChildDaemon } from "./helpers.js";

const skip = vmSkipReason();
let dataDir = "";
const daemons: ChildDaemon[] = [];
let d: ChildDaemon;
const vm: Record<"a" | "b", { id: string; pid: number; bootId: string }> = {
  a: { id: "", pid: 0, bootId: "" },
  b: { id: "", pid: 0, bootId: "" },
};

async function start(extra: Record<string, string> = {}): Promise<ChildDaemon> {
  d = await spawnDaemon(dataDir, extra);
  daemons.push(d);
  return d;
}

async function kill(c: ChildDaemon, signal: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  process.kill(c.pid, signal);
  return c.exited;
}

async function exec(id: string, command: string[]): Promise<{ exit_code: number; stdout: string }> {
  const r = await d.fetch("POST", `/machines/${id}/exec`, { command });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body as { exit_code: number; stdout: string };
}

async function machine(id: string): Promise<{ status: string; pid: number | null; last_error: { code: string } | null }> {
  const r = await d.fetch("GET", `/machines/${id}`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body as { status: string; pid: number | null; last_error: { code: string } | null };
}

before(async () => {
  if (skip) return;
  dataDir = await mkdtemp(join(tmpdir(), "hf-restart-"));
});

after(async () => {
  if (skip) return;
  await endDaemons(daemons, dataDir);
});

test("two running VMs survive a SIGKILLed daemon and are re-adopted", { skip: skip ?? false }, async () => {
  await start();
  for (const k of ["a", "b"] as const) {
    const r = await d.fetch("POST", "/machines", { name: `restart-${k}`, vcpu_count: 1, mem_size_mib: 256, start: true });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    vm[k].id = r.body.id as string;
  }
  for (const k of ["a", "b"] as const) {
    const w = await d.fetch("GET", `/machines/${vm[k].id}/wait?status=running&timeout=30`);
    assert.equal(w.status, 200, JSON.stringify(w.body));
    vm[k].pid = w.body.pid as number;
    vm[k].bootId = (await exec(vm[k].id, ["cat", "/proc/sys/kernel/random/boot_id"])).stdout;
    await exec(vm[k].id, ["sh", "-c", `echo ${k}-was-here > /tmp/marker`]);
  }

  const gone = await kill(d, "SIGKILL");
  assert.equal(gone.signal, "SIGKILL");
  for (const k of ["a", "b"] as const) assert.ok(pidAlive(vm[k].pid), `VM ${k} outlives the daemon`);

  await start();
  for (const k of ["a", "b"] as const) {
    const m = await machine(vm[k].id);
    assert.equal(m.status, "running");
    assert.equal(m.pid, vm[k].pid, "the same VMM process");
    assert.equal((await exec(vm[k].id, ["cat", "/proc/sys/kernel/random/boot_id"])).stdout, vm[k].bootId, "the same boot");
    assert.equal((await exec(vm[k].id, ["cat", "/tmp/marker"])).stdout, `${k}-was-here\n`);
  }
  const running = await d.fetch("GET", "/machines?status=running");
  assert.equal((running.body as unknown as unknown[]).length, 2);
});

test("a VM whose QEMU died while the daemon was down is reported failed; orphans are removed", { skip: skip ?? false }, async () => {
  await kill(d, "SIGKILL");
  process.kill(vm.b.pid, "SIGKILL");
  await until(async () => !pidAlive(vm.b.pid), 5_000, "VM b's QEMU to die");
  const orphan = join(dataDir, "machines", `vm_${ulid()}`);
  mkdirSync(orphan, { recursive: true });
  // A library user's VM dir in the same data dir is not the daemon's business.
  const libraryVm = join(dataDir, "vms", `vm_${ulid()}`);
  mkdirSync(libraryVm, { recursive: true });

  await start();
  const a = await machine(vm.a.id);
  assert.equal(a.status, "running");
  assert.equal((await exec(vm.a.id, ["cat", "/tmp/marker"])).stdout, "a-was-here\n");
  const b = await machine(vm.b.id);
  assert.equal(b.status, "failed");
  assert.equal(b.last_error?.code, "VMM_EXITED");
  assert.equal(b.pid, null);
  assert.ok(!existsSync(orphan), "the orphaned run dir is removed");
  assert.ok(existsSync(libraryVm), "run dirs outside the daemon's own base are left alone");
  // A failed machine can be started again.
  const s = await d.fetch("POST", `/machines/${vm.b.id}/start`);
  assert.equal(s.status, 202, JSON.stringify(s.body));
  const w = await d.fetch("GET", `/machines/${vm.b.id}/wait?status=running&timeout=30`);
  assert.equal(w.status, 200, JSON.stringify(w.body));
  vm.b.pid = w.body.pid as number;
});

test("SIGTERM: graceful exit 0, VMs keep running", { skip: skip ?? false }, async () => {
  const r = await kill(d, "SIGTERM");
  assert.equal(r.code, 0, d.output().slice(-2000));
  assert.ok(pidAlive(vm.a.pid));
  assert.ok(pidAlive(vm.b.pid));
  await start();
  assert.equal((await machine(vm.a.id)).status, "running");
});

test("HYPERFLEET_STOP_VMS_ON_EXIT=true: SIGTERM stops the VMs", { skip: skip ?? false }, async () => {
  await kill(d, "SIGTERM");
  await start({ HYPERFLEET_STOP_VMS_ON_EXIT: "true" });
  assert.equal((await machine(vm.a.id)).status, "running");
  const r = await kill(d, "SIGTERM");
  assert.equal(r.code, 0, d.output().slice(-2000));
  await until(async () => !pidAlive(vm.a.pid) && !pidAlive(vm.b.pid), 15_000, "both VMs to stop");
  await start();
  for (const k of ["a", "b"] as const) assert.equal((await machine(vm[k].id)).status, "stopped");
  for (const k of ["a", "b"] as const) {
    const del = await d.fetch("DELETE", `/machines/${vm[k].id}`);
    assert.equal(del.status, 204);
  }
  const last = await kill(d, "SIGTERM");
  assert.equal(last.code, 0);
});
