/**
 * Volumes through the HTTP API against real VMs, a real SQLite store and real mkfs.ext4
 * (docs/agents.md "Volumes"):
 * - bad requests are 4xx with codes, and leave nothing behind;
 * - a volume is formatted on first use and mounted where the machine asked; what a machine wrote
 *   survives its deletion and is read by the next machine that names the volume;
 * - one writer at a time: a second machine is 409 VOLUME_IN_USE, so is deleting a held volume;
 *   snapshots and forks of a machine with volumes are 409 MACHINE_HAS_VOLUMES;
 * - a read-only mount refuses writes;
 * - a stopped machine still holds its volume, and mounts it again when started;
 * - a daemon restart keeps the claim (the machine is adopted with its volume mounted) and sweeps
 *   volume files no volume owns;
 * - a free volume's delete is 204 and removes its file.
 * The daemon runs in-process (app.inject) on a temp data dir; the restart starts a second daemon
 * on the same dir. Cleanup deletes every machine and kills leftover VMMs by pid.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, openSync, readSync, closeSync, statSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { LightMyRequestResponse } from "fastify";
import { pino } from "pino";
import { loadConfig } from "../../src/config/config.js";
import { startDaemon, type Daemon } from "../../src/daemon/daemon.js";
import { AUTH, assertAllCodesDeclared, deleteMachinesAndClose, json, killLeftoverVmms, testEnv, undeclaredCodeCatcher, vmSkipReason } from "./helpers.js";

const skip = vmSkipReason();
let dataDir = "";
let daemon: Daemon | null = null;
const undeclared: string[] = [];

interface Volume {
  id: string;
  name: string;
  size_mib: number;
  machine_id: string | null;
}
interface Machine {
  id: string;
  status: string;
  volumes: Array<{ id: string; name: string; mount: string; read_only: boolean }>;
}
interface ErrorBody {
  error: { code: string; message: string; machine_id?: string };
}

async function open(): Promise<void> {
  const config = loadConfig(testEnv(dataDir, { HYPERFLEET_VOLUME_MAX_SIZE_MIB: "1024" })).unwrap();
  daemon = await startDaemon(config, { listen: false, logger: pino({ level: process.env.TEST_LOG_LEVEL ?? "warn" }, undeclaredCodeCatcher(undeclared)) });
}

function req(method: string, url: string, body?: unknown): Promise<LightMyRequestResponse> {
  return daemon!.app.inject({
    method: method as "GET",
    url,
    headers: { ...AUTH, ...(body !== undefined && { "content-type": "application/json" }) },
    ...(body !== undefined && { payload: JSON.stringify(body) }),
  });
}

function expectError(r: LightMyRequestResponse, status: number, code: string): ErrorBody["error"] {
  assert.equal(r.statusCode, status, r.body);
  const e = json<ErrorBody>(r).error;
  assert.equal(e.code, code, r.body);
  return e;
}

async function createMachine(name: string, volumes: unknown[], start = true): Promise<LightMyRequestResponse> {
  return req("POST", "/machines", { name, vcpu_count: 1, mem_size_mib: 256, start, volumes });
}

async function running(id: string): Promise<Machine> {
  const w = await req("GET", `/machines/${id}/wait?status=running&timeout=30`);
  assert.equal(w.statusCode, 200, w.body);
  return json<Machine>(w);
}

async function exec(id: string, script: string): Promise<{ exit_code: number; stdout: string; stderr: string }> {
  const r = await req("POST", `/machines/${id}/exec`, { command: ["sh", "-c", script] });
  assert.equal(r.statusCode, 200, r.body);
  return json(r);
}

async function remove(id: string): Promise<void> {
  const r = await req("DELETE", `/machines/${id}`);
  assert.equal(r.statusCode, 204, r.body);
}

async function volume(ref: string): Promise<Volume> {
  const r = await req("GET", `/volumes/${ref}`);
  assert.equal(r.statusCode, 200, r.body);
  return json<Volume>(r);
}

/** The ext4 superblock magic (0xEF53 at byte 1080): whether the host formatted the file. */
function hasExt4(path: string): boolean {
  const fd = openSync(path, "r");
  try {
    const b = Buffer.alloc(2);
    return readSync(fd, b, 0, 2, 1080) === 2 && b.readUInt16LE(0) === 0xef53;
  } finally {
    closeSync(fd);
  }
}

before(async () => {
  if (skip) return;
  dataDir = await mkdtemp(join(tmpdir(), "hf-volumes-"));
  await open();
});

after(async () => {
  if (skip) return;
  if (daemon) await deleteMachinesAndClose(daemon);
  killLeftoverVmms(dataDir);
  await rm(dataDir, { recursive: true, force: true });
  assertAllCodesDeclared(undeclared);
});

test("bad requests are 4xx with a code and leave no volume or machine behind", { skip: skip ?? false }, async () => {
  expectError(await req("POST", "/volumes", { name: "-bad", size_mib: 64 }), 400, "INVALID_ARGUMENT");
  expectError(await req("POST", "/volumes", { name: "small", size_mib: 8 }), 400, "INVALID_ARGUMENT");
  const big = expectError(await req("POST", "/volumes", { name: "big", size_mib: 2048 }), 400, "INVALID_ARGUMENT");
  assert.match(big.message, /HYPERFLEET_VOLUME_MAX_SIZE_MIB/);
  expectError(await req("POST", "/volumes", { name: "x", size_mib: 64, extra: 1 }), 400, "INVALID_ARGUMENT");
  expectError(await req("POST", "/volumes", { name: "x" }), 400, "INVALID_ARGUMENT");
  expectError(await req("GET", "/volumes/nope"), 404, "VOLUME_NOT_FOUND");
  expectError(await req("DELETE", "/volumes/vol_01AAAAAAAAAAAAAAAAAAAAAAAA"), 404, "VOLUME_NOT_FOUND");

  const dup = await req("POST", "/volumes", { name: "dup", size_mib: 64 });
  assert.equal(dup.statusCode, 201, dup.body);
  expectError(await req("POST", "/volumes", { name: "dup", size_mib: 64 }), 409, "VOLUME_ALREADY_EXISTS");

  expectError(await createMachine("m-unknown", [{ name: "nope", mount: "/data" }], false), 404, "VOLUME_NOT_FOUND");
  for (const mount of ["/", "data", "/a/../etc", "/a/./b", ""]) {
    expectError(await createMachine("m-bad-mount", [{ name: "dup", mount }], false), 400, "INVALID_ARGUMENT");
  }
  expectError(await createMachine("m-twice", [{ name: "dup", mount: "/a" }, { name: "dup", mount: "/b" }], false), 400, "INVALID_ARGUMENT");
  expectError(await createMachine("m-nine", Array.from({ length: 9 }, (_, i) => ({ name: "dup", mount: `/m${i}` })), false), 400, "INVALID_ARGUMENT");
  expectError(await createMachine("m-extra", [{ name: "dup", mount: "/a", size: 1 }], false), 400, "INVALID_ARGUMENT");
  assert.deepEqual(json<unknown[]>(await req("GET", "/machines")), []);
  assert.equal((await volume("dup")).machine_id, null, "no refused create holds the volume");

  const del = await req("DELETE", "/volumes/dup");
  assert.equal(del.statusCode, 204, del.body);
  assert.deepEqual(json<Volume[]>(await req("GET", "/volumes")), []);
});

test("data on a volume outlives its machine; one writer at a time; read-only refuses writes; a restart keeps the claim", { skip: skip ?? false }, async () => {
  const cr = await req("POST", "/volumes", { name: "state", size_mib: 64 });
  assert.equal(cr.statusCode, 201, cr.body);
  const vol = json<Volume>(cr);
  assert.match(vol.id, /^vol_[0-9A-Z]{26}$/);
  assert.deepEqual({ name: vol.name, size_mib: vol.size_mib, machine_id: vol.machine_id }, { name: "state", size_mib: 64, machine_id: null });
  const file = join(dataDir, "volumes", `${vol.id}.ext4`);
  const st = statSync(file);
  assert.equal(st.size, 64 * 1024 * 1024);
  assert.equal(st.mode & 0o777, 0o600);
  assert.ok(st.blocks * 512 < 1024 * 1024, "sparse until used");
  assert.equal(hasExt4(file), false, "formatted on first use, not at create");
  assert.equal((await volume(vol.id)).name, "state", "found by id as by name");

  // The first writer: formats the volume on its first boot, mounts it at /data, writes to it.
  const a = await createMachine("writer", [{ name: "state", mount: "/data" }]);
  assert.equal(a.statusCode, 201, a.body);
  const aId = json<Machine>(a).id;
  assert.deepEqual(json<Machine>(a).volumes, [{ id: vol.id, name: "state", mount: "/data", read_only: false }]);
  await running(aId);
  assert.ok(hasExt4(file));
  const mounted = await exec(aId, "grep ' /data ' /proc/mounts");
  assert.match(mounted.stdout, /^\/dev\/vd[b-z] \/data ext4 rw,/);
  const w = await exec(aId, "echo persisted-$(cat /proc/sys/kernel/random/boot_id) > /data/f && cat /data/f");
  assert.equal(w.exit_code, 0, w.stderr);
  const written = w.stdout;

  // One writer: a second machine, deleting the volume, a snapshot and a fork are all refused.
  const b = expectError(await createMachine("second", [{ name: "state", mount: "/data" }]), 409, "VOLUME_IN_USE");
  assert.equal(b.machine_id, aId);
  assert.equal(json<unknown[]>(await req("GET", "/machines")).length, 1, "the refused machine does not exist");
  assert.equal(expectError(await req("DELETE", "/volumes/state"), 409, "VOLUME_IN_USE").machine_id, aId);
  assert.equal((await volume("state")).machine_id, aId);
  expectError(await req("POST", `/machines/${aId}/snapshots`), 409, "MACHINE_HAS_VOLUMES");
  expectError(await req("POST", `/machines/${aId}/fork`, { count: 1 }), 409, "MACHINE_HAS_VOLUMES");
  assert.deepEqual(json<unknown[]>(await req("GET", "/snapshots")), []);

  // Stopped, it still holds the volume; started again, it mounts it again with the data.
  assert.equal((await req("POST", `/machines/${aId}/stop`)).statusCode, 202);
  assert.equal((await req("GET", `/machines/${aId}/wait?status=stopped&timeout=30`)).statusCode, 200);
  expectError(await createMachine("while-stopped", [{ name: "state", mount: "/data" }]), 409, "VOLUME_IN_USE");
  assert.equal((await req("POST", `/machines/${aId}/start`)).statusCode, 202);
  await running(aId);
  assert.equal((await exec(aId, "cat /data/f")).stdout, written);

  // Deleting the machine frees the volume and keeps its data.
  await remove(aId);
  assert.equal((await volume("state")).machine_id, null);

  // The next machine reads it, read-only, somewhere else; writes fail.
  const c = await createMachine("reader", [{ name: "state", mount: "/srv/state/", read_only: true }]);
  assert.equal(c.statusCode, 201, c.body);
  const cId = json<Machine>(c).id;
  assert.deepEqual(json<Machine>(c).volumes, [{ id: vol.id, name: "state", mount: "/srv/state", read_only: true }]);
  await running(cId);
  assert.equal((await exec(cId, "cat /srv/state/f")).stdout, written);
  const ro = await exec(cId, "echo x > /srv/state/g");
  assert.notEqual(ro.exit_code, 0);
  assert.match(ro.stderr, /Read-only file system/);
  assert.match((await exec(cId, "grep ' /srv/state ' /proc/mounts")).stdout, /ext4 ro,/);

  // A restarted daemon adopts the reader: the claim and the mount are still there. A volume file
  // no volume owns (a create or delete cut short by a crash) is swept; the real one is kept.
  await daemon!.close();
  daemon = null;
  const stray = join(dataDir, "volumes", "vol_01STRAYSTRAYSTRAYSTRAYSTRA.ext4");
  writeFileSync(stray, "left by a crash");
  await open();
  assert.equal(existsSync(stray), false);
  assert.ok(existsSync(file));
  assert.equal(json<Machine>(await req("GET", `/machines/${cId}`)).status, "running");
  assert.equal((await volume("state")).machine_id, cId);
  expectError(await createMachine("after-restart", [{ name: "state", mount: "/data" }]), 409, "VOLUME_IN_USE");
  assert.equal((await exec(cId, "cat /srv/state/f")).stdout, written);

  // Free again once the reader goes; then the volume and its file can be deleted.
  await remove(cId);
  const del = await req("DELETE", `/volumes/${vol.id}`);
  assert.equal(del.statusCode, 204, del.body);
  assert.equal(existsSync(file), false);
  expectError(await req("GET", "/volumes/state"), 404, "VOLUME_NOT_FOUND");
});
