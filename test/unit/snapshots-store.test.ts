/**
 * Snapshots on a real SQLite store: a snapshot machines were created from cannot be deleted (the
 * repository's check, then the foreign key as the backstop); warm templates are keyed by content
 * and evicted least recently used first, never one a machine depends on; a create request naming
 * a snapshot gets the snapshot's shape and NIC, and is refused when it asks for others.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { HyperfleetError } from "../../src/core/errors.js";
import type { MachineRecord } from "../../src/core/machine.js";
import type { SnapshotRecord } from "../../src/core/snapshot.js";
import { ImageUsers } from "../../src/machines/image-users.js";
import { fitRequestToSnapshot, snapshotMachineFields } from "../../src/machines/snapshot-create.js";
import { WarmTemplates } from "../../src/machines/templates.js";
import { newMachine, tempStore } from "../store-fixtures.js";

const log = pino({ level: "silent" });

function snapshot(id: string, over: Partial<SnapshotRecord> = {}): SnapshotRecord {
  const at = "2026-12-05T10:00:00.000Z";
  return {
    id,
    machineId: "vm_SRC",
    vm: { dir: `/snap/${id}`, purpose: "clone", stateFile: `/snap/${id}/state`, memoryFile: `/snap/${id}/memory`, disk: { path: `/snap/${id}/disk.qcow2`, format: "qcow2" }, sizeBytes: 100 },
    source: {
      vcpuCount: 2, memSizeMib: 512, kernelImagePath: "/k", initrdPath: "/i", kernelArgs: null, rootfsPath: "/r", network: true, mac: "02:00:00:00:00:01",
      imageRef: "reg/app:1", imageDigest: null, imageConfig: null, cmd: null, entrypoint: null, workdir: null, user: null,
    },
    sizeBytes: 100,
    auto: false,
    templateKey: null,
    createdAt: at,
    lastUsedAt: at,
    ...over,
  };
}

test("a snapshot machines were created from is refused delete (SNAPSHOT_IN_USE, naming them); the foreign key backs it", async () => {
  const { store } = await tempStore();
  await store.snapshots.insert(snapshot("snap_A"));
  await store.machines.insert({ ...newMachine("vm_C1"), snapshotId: "snap_A", restoreFrom: "snapshot" });
  await assert.rejects(store.snapshots.delete("snap_A"), (e: HyperfleetError) => e.code === "SNAPSHOT_IN_USE" && JSON.stringify(e.details?.machines) === '["vm_C1"]');
  assert.deepEqual(await store.snapshots.users("snap_A"), ["vm_C1"]);
  assert.equal((await store.machines.get("vm_C1"))?.restoreFrom, "snapshot");
  // A machine pointing at a snapshot that does not exist is refused by the store itself.
  await assert.rejects(store.machines.update("vm_C1", { snapshotId: "snap_NOPE" }), /FOREIGN KEY/);
  await store.machines.delete("vm_C1");
  assert.equal(await store.snapshots.delete("snap_A"), true);
  assert.equal(await store.snapshots.get("snap_A"), undefined);
  await store.close();
});

test("warm templates: evicted least recently used first, over the limit only, never one a machine uses", async () => {
  const { store } = await tempStore();
  const dir = await mkdtemp(join(tmpdir(), "hf-tpl-"));
  try {
    const t = (id: string, used: string, size: number) => snapshot(id, { auto: true, templateKey: `key-${id}`, sizeBytes: size, lastUsedAt: used });
    for (const s of [t("snap_OLD", "2026-12-01T00:00:00Z", 100), t("snap_MID", "2026-12-02T00:00:00Z", 100), t("snap_NEW", "2026-12-03T00:00:00Z", 100)]) {
      await store.snapshots.insert(s);
      await mkdir(join(dir, s.id));
      await writeFile(join(dir, s.id, "memory"), "x");
    }
    // The oldest is in use: it stays, and the next oldest goes instead.
    await store.machines.insert({ ...newMachine("vm_U"), snapshotId: "snap_OLD" });
    const templates = new WarmTemplates({ machines: store.machines, snapshots: store.snapshots, imageUsers: new ImageUsers(), dir, maxSize: 250, vmmFingerprint: () => Promise.resolve("qemu:tcg:7.2") });
    await templates.evict(log);
    assert.deepEqual((await store.snapshots.templates()).map((x) => [x.id, x.users]), [["snap_OLD", 1], ["snap_NEW", 0]]);
    assert.equal(existsSync(join(dir, "snap_MID")), false, "its files went with it");
    assert.equal(existsSync(join(dir, "snap_NEW")), true);
    await templates.evict(log);
    assert.equal((await store.snapshots.templates()).length, 2, "within the limit: nothing more goes");
    assert.deepEqual((await store.snapshots.list()).map((s) => s.id), [], "templates are not listed as snapshots");
  } finally {
    await rm(dir, { recursive: true, force: true });
    await store.close();
  }
});

test("a template's key changes with what a restored guest depends on, and only with that", async () => {
  const { store } = await tempStore();
  let fingerprint = "qemu:tcg:QEMU emulator version 7.2.15";
  const templates = new WarmTemplates({ machines: store.machines, snapshots: store.snapshots, imageUsers: new ImageUsers(), dir: "/nonexistent", maxSize: 1, vmmFingerprint: () => Promise.resolve(fingerprint) });
  const base = { ...(await store.machines.insert({ ...newMachine("vm_K"), imageRef: "reg/app:1", rootfsPath: "/images/disks/abc-agent1.ext4" })), imageDigest: "sha256:abc" } as MachineRecord;
  const k = await templates.key(base);
  assert.equal(await templates.key({ ...base, id: "vm_OTHER", name: "other", env: { X: "1" }, cmd: ["other"] }), k, "id, name, env and the main process do not matter");
  const differs: Array<[string, Partial<MachineRecord>]> = [
    ["another agent (the image disk's path carries its hash)", { rootfsPath: "/images/disks/abc-agent2.ext4" }],
    ["another initramfs", { initrdPath: "/initramfs/other.cpio" }],
    ["other kernel arguments", { kernelArgs: "console=hvc0" }],
    ["more memory", { memSizeMib: 512 }],
    ["more vCPUs", { vcpuCount: 2 }],
  ];
  for (const [what, patch] of differs) assert.notEqual(await templates.key({ ...base, ...patch }), k, what);
  fingerprint = "qemu:kvm:QEMU emulator version 7.2.15";
  assert.notEqual(await templates.key(base), k, "another VMM mode");
  assert.equal(templates.eligible(base), true, "a first boot of an image");
  assert.equal(templates.eligible({ ...base, startedAt: "2026-12-05T00:00:00Z" }), false, "a disk that has run is never a template");
  assert.equal(templates.eligible({ ...base, imageRef: null }), false);
  await store.close();
});

test("a create naming a snapshot takes its shape and NIC, and refuses others (SNAPSHOT_INCOMPATIBLE with field)", () => {
  const snap = snapshot("snap_S");
  const req = { name: "c", env: {}, metadata: {}, start: true, snapshot: "snap_S" };
  const fitted = fitRequestToSnapshot(req, snap);
  assert.equal(fitted.vcpuCount, 2);
  assert.equal(fitted.memSizeMib, 512);
  assert.deepEqual(fitted.network, {}, "the source had a network, so the clone has one, whatever the default");
  assert.deepEqual(fitRequestToSnapshot({ ...req, vcpuCount: 2, network: { internet: false } }, snap).network, { internet: false });
  const refused: Array<[string, object, SnapshotRecord]> = [
    ["vcpu_count", { vcpuCount: 1 }, snap],
    ["mem_size_mib", { memSizeMib: 256 }, snap],
    ["image", { image: "reg/app:1" }, snap],
    ["cmd", { cmd: ["x"] }, snap],
    ["network", { network: false }, snap],
    ["network", { network: {} }, snapshot("snap_N", { source: { ...snap.source, network: false } })],
  ];
  for (const [field, extra, s] of refused) {
    assert.throws(() => fitRequestToSnapshot({ ...req, ...extra }, s), (e: HyperfleetError) => e.code === "SNAPSHOT_INCOMPATIBLE" && e.details?.field === field, field);
  }
  const fields = snapshotMachineFields(snap);
  assert.equal(fields.snapshotId, "snap_S");
  assert.equal(fields.restoreFrom, "snapshot");
  assert.equal(fields.rootfsPath, "/snap/snap_S/disk.qcow2", "a later cold boot keeps the clone's overlay over the frozen disk");
  assert.equal(fields.vmm, "qemu", "a snapshot from before the VMM was recorded is QEMU's");
  assert.equal(snapshotMachineFields(snapshot("snap_F", { source: { ...snap.source, vmm: "firecracker" } })).vmm, "firecracker", "a clone belongs to its snapshot's VMM");
});
