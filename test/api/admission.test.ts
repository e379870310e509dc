/**
 * Admission control against a real daemon and real VMs, with small limits: 600 MiB for machines,
 * 64 MiB of VMM overhead each, so one 256 MiB machine (320 MiB charged) fits and two do not.
 * - concurrent starts: exactly one is admitted (the check and the reservation are one transaction),
 *   in process (app.inject: the handlers interleave at every await, which catches a sum read outside
 *   the status change's transaction) and over HTTP against a daemon process;
 * - `start: true` at create is a start, and a refused one creates nothing;
 * - the share comes back when the machine stops, fails (VMM killed) or is deleted;
 * - after a daemon restart the adopted machine still holds its share;
 * - the vCPU budget, and machines that could never fit (400 at create).
 * Five boots in all (the in-process one is cut short); every VM is deleted (or killed by pid) at the end.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { killLeftoverVmms, spawnDaemon, startTestDaemon, vmSkipReason, type ChildDaemon } from "./helpers.js";

const skip = vmSkipReason();
const LIMITS = {
  HYPERFLEET_MAX_MEMORY_MIB: "600",
  HYPERFLEET_VM_OVERHEAD_MIB: "64",
  HYPERFLEET_MAX_VCPUS: "1",
  HYPERFLEET_MAX_VCPUS_PER_MACHINE: "2",
};
const FULL = /^starting this machine needs 320 MiB \(256 guest \+ 64 VMM overhead\); 280 of 600 MiB are free \(HYPERFLEET_MAX_MEMORY_MIB\)/;

type Res = Awaited<ReturnType<ChildDaemon["fetch"]>>;
interface ApiError {
  code: string;
  message: string;
  field?: string;
}
interface MachineJson {
  id: string;
  name: string;
  status: string;
  pid: number | null;
}

let dataDir = "";
let daemon: ChildDaemon | null = null;
const daemons: ChildDaemon[] = [];

async function open(): Promise<void> {
  daemon = await spawnDaemon(dataDir, LIMITS);
  daemons.push(daemon);
}

function req(method: string, url: string, body?: unknown): Promise<Res> {
  return daemon!.fetch(method, url, body);
}

async function create(name: string, extra: Record<string, unknown> = {}): Promise<Res> {
  return req("POST", "/machines", { name, vcpu_count: 1, mem_size_mib: 256, ...extra });
}

async function createdId(name: string, extra: Record<string, unknown> = {}): Promise<string> {
  const r = await create(name, extra);
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return (r.body as unknown as MachineJson).id;
}

async function get(id: string): Promise<MachineJson> {
  return (await req("GET", `/machines/${id}`)).body as unknown as MachineJson;
}

async function list(): Promise<MachineJson[]> {
  return (await req("GET", "/machines")).body as unknown as MachineJson[];
}

async function waitFor(id: string, status: string): Promise<MachineJson> {
  const r = await req("GET", `/machines/${id}/wait?status=${status}&timeout=30`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body as unknown as MachineJson;
}

function errorOf(r: Res): ApiError {
  return (r.body as { error: ApiError }).error;
}

function assertRefused(r: Res, message: RegExp): void {
  assert.equal(r.status, 409, JSON.stringify(r.body));
  assert.equal(errorOf(r).code, "INSUFFICIENT_CAPACITY");
  assert.match(errorOf(r).message, message);
}

before(async () => {
  if (skip) return;
  dataDir = await mkdtemp(join(tmpdir(), "hf-admit-"));
  await open();
});

after(async () => {
  if (skip) return;
  if (daemon && daemon.proc.exitCode === null) {
    for (const m of await list().catch(() => [])) await req("DELETE", `/machines/${m.id}`).catch(() => undefined);
  }
  for (const d of daemons) if (d.proc.exitCode === null && d.proc.signalCode === null) d.proc.kill("SIGTERM");
  await Promise.all(daemons.map((d) => d.exited));
  killLeftoverVmms(dataDir);
  await rm(dataDir, { recursive: true, force: true });
});

test("in-process, where concurrent requests interleave at every await: one of six starts is admitted", { skip: skip ?? false }, async () => {
  const t = await startTestDaemon(LIMITS);
  try {
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await t.req("POST", "/machines", { name: `inproc-${i}`, vcpu_count: 1, mem_size_mib: 256 });
      assert.equal(r.statusCode, 201, r.body);
      ids.push((JSON.parse(r.body) as MachineJson).id);
    }
    const answers = await Promise.all(ids.map((id) => t.req("POST", `/machines/${id}/start`)));
    assert.deepEqual(answers.map((r) => r.statusCode).sort(), [202, 409, 409, 409, 409, 409], answers.map((r) => r.body).join("\n"));
    for (const r of answers.filter((a) => a.statusCode === 409)) assert.match((JSON.parse(r.body) as { error: ApiError }).error.message, FULL);
  } finally {
    await t.close(); // deletes the admitted machine, ending its boot
  }
});

describe("admission control", { skip: skip ?? false }, () => {
  const ids: string[] = [];

  test("machines that could never fit are refused at create with the field at fault", async () => {
    const mem = await create("too-much-memory", { mem_size_mib: 1024 });
    assert.equal(mem.status, 400, JSON.stringify(mem.body));
    assert.equal(errorOf(mem).code, "INVALID_ARGUMENT");
    assert.equal(errorOf(mem).field, "mem_size_mib");
    assert.match(errorOf(mem).message, /needs 1088 MiB \(1024 guest \+ 64 VMM overhead\); 600 of 600 MiB are free/);

    const cpus = await create("too-many-vcpus", { vcpu_count: 3 });
    assert.equal(cpus.status, 400, JSON.stringify(cpus.body));
    assert.equal(errorOf(cpus).field, "vcpu_count");
    assert.match(errorOf(cpus).message, /at most 2 \(HYPERFLEET_MAX_VCPUS_PER_MACHINE\)/);

    assert.deepEqual(await list(), [], "nothing was created");
  });

  test("of four concurrent starts over HTTP where one fits, exactly one is admitted", async () => {
    for (let i = 0; i < 4; i++) ids.push(await createdId(`adm-${i}`));
    const answers = await Promise.all(ids.map((id) => req("POST", `/machines/${id}/start`)));
    const admitted = answers.filter((r) => r.status === 202);
    assert.equal(admitted.length, 1, answers.map((r) => `${r.status} ${JSON.stringify(r.body)}`).join("\n"));
    for (const r of answers.filter((a) => a.status !== 202)) assertRefused(r, FULL);
    const first = (admitted[0]!.body as unknown as MachineJson).id;
    // Keep the admitted one first: the later tests go through the others in order.
    ids.splice(ids.indexOf(first), 1);
    ids.unshift(first);
    await waitFor(first, "running");
    for (const id of ids.slice(1)) assert.equal((await get(id)).status, "created");
  });

  test("create with start: true is a start: refused, it creates nothing", async () => {
    assertRefused(await create("adm-started", { start: true }), FULL);
    const names = (await list()).map((m) => m.name);
    assert.ok(!names.includes("adm-started"), names.join(","));
  });

  test("the vCPU budget is checked too", async () => {
    // 128 MiB fits in the memory left (192 of 280), but the one vCPU is taken.
    const small = await createdId("adm-small", { mem_size_mib: 128 });
    assertRefused(await req("POST", `/machines/${small}/start`), /^starting this machine needs 1 vCPUs; 0 of 1 are free \(HYPERFLEET_MAX_VCPUS\)/);
    assert.equal((await req("DELETE", `/machines/${small}`)).status, 204);
  });

  test("a stopped machine gives its share back", async () => {
    assert.equal((await req("POST", `/machines/${ids[0]}/stop`)).status, 202);
    await waitFor(ids[0]!, "stopped");
    assert.equal((await req("POST", `/machines/${ids[1]}/start`)).status, 202);
    await waitFor(ids[1]!, "running");
    assertRefused(await req("POST", `/machines/${ids[0]}/start`), FULL);
  });

  test("a machine whose VMM died (failed) gives its share back", async () => {
    const { pid } = await get(ids[1]!);
    assert.ok(pid !== null && pid > 1);
    process.kill(pid, "SIGKILL"); // our own VM's QEMU, by pid
    await waitFor(ids[1]!, "failed");
    assert.equal((await req("POST", `/machines/${ids[2]}/start`)).status, 202);
    await waitFor(ids[2]!, "running");
  });

  test("a deleted machine gives its share back", async () => {
    assert.equal((await req("DELETE", `/machines/${ids[2]}`)).status, 204);
    assert.equal((await req("POST", `/machines/${ids[3]}/start`)).status, 202);
    await waitFor(ids[3]!, "running");
  });

  test("after a daemon restart, the adopted machine still holds its share", async () => {
    const old = daemon!;
    old.proc.kill("SIGTERM"); // our daemon, by pid; its VMs keep running
    await old.exited;
    await open();
    assert.equal((await get(ids[3]!)).status, "running");
    assert.match(daemon!.output(), /"adopted":1/);
    assertRefused(await req("POST", `/machines/${ids[0]}/start`), FULL);
  });
});
