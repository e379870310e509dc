/**
 * Volumes in the store (real SQLite files): a machine claims the volumes it names in its insert
 * transaction, so of two machines naming one volume exactly one is created; the claim goes with
 * the machine's row and survives reopening the store; a held volume cannot be deleted. Also the
 * pure request rules (src/core/volume.ts) and the mkfs arguments.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { openStore } from "../../src/store/index.js";
import { HyperfleetError } from "../../src/core/errors.js";
import { checkVolumeRequests, normalMount, volumeSerial, type VolumeAttachment } from "../../src/core/volume.js";
import { volumeMkfsArgs } from "../../src/machines/volume-files.js";
import { newMachine, tempStore } from "../store-fixtures.js";
import type { NetworkClaim } from "../../src/store/machine-repository.js";
import { addressPlan, nextFreeSlot, slotPlan } from "../../src/network/address-plan.js";

const plan = addressPlan("10.210.0.0/16");
const netClaim: NetworkClaim = {
  pickSlot: (used) => nextFreeSlot(plan, used),
  network: (slot) => ({ slot, ip: slotPlan(plan, slot).vmIp, gateway: slotPlan(plan, slot).hostIp, mac: "02:00:00:00:00:01", dns: [], internet: true, allowOut: [], denyOut: [], privateNetwork: null }),
  ports: () => Promise.resolve([]),
};

const at = "2026-01-01T00:00:00.000Z";
const att = (volumeId: string, name: string, mount = "/data"): VolumeAttachment => ({ volumeId, name, mount, readOnly: false });

async function rejectsWith(p: Promise<unknown>, code: string): Promise<HyperfleetError> {
  const e = await p.then(() => assert.fail(`expected ${code}`), (x: unknown) => x);
  assert.ok(e instanceof HyperfleetError, String(e));
  assert.equal(e.code, code, e.message);
  return e;
}

test("a machine's insert claims its volumes; a second machine naming one is VOLUME_IN_USE and is not created", async () => {
  const { store } = await tempStore();
  await store.volumes.insert({ id: "vol_a", name: "a", sizeMib: 64, createdAt: at });
  await store.volumes.insert({ id: "vol_b", name: "b", sizeMib: 64, createdAt: at });
  const m1 = await store.machines.insert({ ...newMachine("vm_1"), volumes: [att("vol_a", "a"), att("vol_b", "b", "/b")] });
  assert.deepEqual(m1.volumes.map((v) => v.name), ["a", "b"]);
  assert.equal((await store.volumes.find("a"))?.machineId, "vm_1");
  assert.equal((await store.volumes.find("vol_b"))?.machineId, "vm_1");
  const e = await rejectsWith(store.machines.insert({ ...newMachine("vm_2"), volumes: [att("vol_b", "b")] }), "VOLUME_IN_USE");
  assert.equal(e.details?.machine_id, "vm_1");
  assert.equal(await store.machines.get("vm_2"), undefined, "the refused machine was rolled back");
  await rejectsWith(store.machines.insert({ ...newMachine("vm_3"), volumes: [att("vol_gone", "gone")] }), "VOLUME_NOT_FOUND");
  assert.equal(await store.machines.get("vm_3"), undefined);
  await store.close();
});

test("a networked machine's insert claims its volumes in the same transaction: a refused one takes no slot", async () => {
  const { store } = await tempStore();
  await store.volumes.insert({ id: "vol_n", name: "n", sizeMib: 64, createdAt: at });
  const a = await store.machines.insert({ ...newMachine("vm_a"), volumes: [att("vol_n", "n")] }, netClaim);
  assert.equal(a.network?.slot, 1);
  assert.equal((await store.volumes.find("n"))?.machineId, "vm_a");
  await rejectsWith(store.machines.insert({ ...newMachine("vm_b"), volumes: [att("vol_n", "n")] }, netClaim), "VOLUME_IN_USE");
  assert.deepEqual((await store.networkSlots.list()).map((l) => l.machineId), ["vm_a"], "the refused machine's slot was rolled back");
  await store.close();
});

test("two concurrent inserts naming one free volume: exactly one wins", async () => {
  const { store } = await tempStore();
  await store.volumes.insert({ id: "vol_c", name: "c", sizeMib: 64, createdAt: at });
  const results = await Promise.allSettled([1, 2, 3, 4].map((i) => store.machines.insert({ ...newMachine(`vm_${i}`), volumes: [att("vol_c", "c")] })));
  assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
  for (const r of results) if (r.status === "rejected") assert.equal((r.reason as HyperfleetError).code, "VOLUME_IN_USE");
  assert.equal((await store.machines.list()).length, 1);
  await store.close();
});

test("a held volume cannot be deleted; deleting the machine frees it (the claim survives a reopen until then)", async () => {
  const { store, path } = await tempStore();
  await store.volumes.insert({ id: "vol_d", name: "d", sizeMib: 64, createdAt: at });
  await store.machines.insert({ ...newMachine("vm_1"), volumes: [att("vol_d", "d")] });
  await rejectsWith(store.volumes.delete("d"), "VOLUME_IN_USE");
  await store.close();
  const again = await openStore({ path });
  assert.equal((await again.volumes.find("d"))?.machineId, "vm_1");
  assert.deepEqual((await again.machines.get("vm_1"))?.volumes, [att("vol_d", "d")]);
  assert.ok(await again.machines.delete("vm_1"));
  assert.equal((await again.volumes.find("d"))?.machineId, null);
  const deleted = await again.volumes.delete("vol_d");
  assert.equal(deleted.name, "d");
  assert.equal(await again.volumes.find("d"), undefined);
  await rejectsWith(again.volumes.delete("d"), "VOLUME_NOT_FOUND");
  await again.close();
});

test("volume names are unique: VOLUME_ALREADY_EXISTS", async () => {
  const { store } = await tempStore();
  await store.volumes.insert({ id: "vol_e", name: "e", sizeMib: 64, createdAt: at });
  await rejectsWith(store.volumes.insert({ id: "vol_f", name: "e", sizeMib: 64, createdAt: at }), "VOLUME_ALREADY_EXISTS");
  assert.deepEqual((await store.volumes.list()).map((v) => v.id), ["vol_e"]);
  await store.close();
});

test("mount rules: absolute, not /, no . or .., no duplicates, at most 8", () => {
  const bad = (reqs: Array<{ name: string; mount: string }>, field: string) => {
    assert.throws(() => checkVolumeRequests(reqs), (e: unknown) => e instanceof HyperfleetError && e.code === "INVALID_ARGUMENT" && e.details?.field === field);
  };
  bad([{ name: "a", mount: "data" }], "volumes[0].mount");
  bad([{ name: "a", mount: "/" }], "volumes[0].mount");
  bad([{ name: "a", mount: "///" }], "volumes[0].mount");
  bad([{ name: "a", mount: "/x/../etc" }], "volumes[0].mount");
  bad([{ name: "a", mount: "/x/." }], "volumes[0].mount");
  bad([{ name: "a", mount: "/x" }, { name: "b", mount: "/x/" }], "volumes[1].mount");
  bad([{ name: "a", mount: "/x" }, { name: "a", mount: "/y" }], "volumes[1].name");
  bad(Array.from({ length: 9 }, (_, i) => ({ name: `v${i}`, mount: `/m${i}` })), "volumes");
  checkVolumeRequests([{ name: "a", mount: "/data" }, { name: "b", mount: "/srv/..state" }]);
  assert.equal(normalMount("//srv//state/"), "/srv/state");
  assert.equal(volumeSerial(7), "hfvol7");
  assert.deepEqual(volumeMkfsArgs("/d/vol_x.ext4", "a-very-long-volume-name"), ["-q", "-F", "-m", "0", "-L", "a-very-long-volu", "-E", "lazy_itable_init=0,lazy_journal_init=0", "/d/vol_x.ext4"]);
});
