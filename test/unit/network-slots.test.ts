/** Network slots in the store (docs/adr/0008) against real SQLite files, with real concurrent writers. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { openStore, type Store } from "../../src/store/index.js";
import { newMachine, tempStore } from "../store-fixtures.js";
import { addressPlan, nextFreeSlot } from "../../src/network/address-plan.js";
import { HyperfleetError } from "../../src/core/errors.js";

const run = promisify(execFile);

async function machines(store: Store, n: number, prefix = "vm_"): Promise<string[]> {
  const ids = Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(3, "0")}`);
  for (const id of ids) await store.machines.insert(newMachine(id));
  return ids;
}

const SUBNET = "10.210.0.0/16";
const plan = addressPlan(SUBNET);
const pick = (used: ReadonlySet<number>) => nextFreeSlot(plan, used);

test("allocate gives the lowest free slot, the same one again to its holder, and release frees it", async () => {
  const { store } = await tempStore();
  const [a, b, c] = await machines(store, 3);
  assert.equal((await store.networkSlots.allocate(a!, pick)).slot, 1);
  assert.equal((await store.networkSlots.allocate(b!, pick)).slot, 2);
  assert.equal((await store.networkSlots.allocate(a!, pick)).slot, 1, "a retried start keeps its addresses");
  assert.equal(await store.networkSlots.release(a!), true);
  assert.equal(await store.networkSlots.release(a!), false);
  assert.equal((await store.networkSlots.allocate(c!, pick)).slot, 1, "the freed slot is reused");
  assert.deepEqual(
    (await store.networkSlots.list()).map((l) => [l.slot, l.machineId]),
    [
      [1, c],
      [2, b],
    ],
  );
  await store.close();
});

test("deleting the machine releases its slot (ON DELETE CASCADE)", async () => {
  const { store } = await tempStore();
  const [a] = await machines(store, 1);
  await store.networkSlots.allocate(a!, pick);
  await store.machines.delete(a!);
  assert.deepEqual(await store.networkSlots.list(), []);
  await store.close();
});

test("a full subnet answers INSUFFICIENT_CAPACITY and leaves nothing half-written", async () => {
  const { store } = await tempStore();
  const small = addressPlan("192.168.77.0/29"); // two usable slots
  const ids = await machines(store, 3);
  for (const id of ids.slice(0, 2)) await store.networkSlots.allocate(id, (u) => nextFreeSlot(small, u));
  await assert.rejects(
    store.networkSlots.allocate(ids[2]!, (u) => nextFreeSlot(small, u)),
    (e) => e instanceof HyperfleetError && e.code === "INSUFFICIENT_CAPACITY",
  );
  assert.equal((await store.networkSlots.list()).length, 2);
  // The transaction was rolled back: the connection still works for the next writer.
  await store.networkSlots.release(ids[0]!);
  assert.equal((await store.networkSlots.allocate(ids[2]!, (u) => nextFreeSlot(small, u))).slot, 1);
  await store.close();
});

test("the table itself refuses a second holder of a slot and a second slot for a machine", async () => {
  const { store, path } = await tempStore();
  const [a, b] = await machines(store, 2);
  await store.networkSlots.allocate(a!, pick);
  await store.close();
  const db = new Database(path);
  try {
    const insert = db.prepare("INSERT INTO network_slots (slot, machine_id, allocated_at) VALUES (?, ?, 'now')");
    assert.throws(() => insert.run(1, b), /UNIQUE constraint failed: network_slots\.slot/);
    assert.throws(() => insert.run(2, a), /UNIQUE constraint failed: network_slots\.machine_id/);
    db.pragma("foreign_keys = ON");
    assert.throws(() => insert.run(3, "vm_nobody"), /FOREIGN KEY constraint failed/);
  } finally {
    db.close();
  }
});

test("concurrent allocations in one daemon never share a slot", async () => {
  const { store } = await tempStore();
  const ids = await machines(store, 60);
  const leases = await Promise.all(ids.map((id) => store.networkSlots.allocate(id, pick)));
  const slots = leases.map((l) => l.slot).sort((x, y) => x - y);
  assert.deepEqual(slots, Array.from({ length: 60 }, (_, i) => i + 1));
  await store.close();
});

test("two processes allocating on one database file at once never share a slot", async () => {
  const { store, path } = await tempStore();
  const ids = await machines(store, 80);
  await store.close();
  const worker = fileURLToPath(new URL("./fixtures/slot-worker.ts", import.meta.url));
  // Both start allocating at the same instant, well after either has loaded.
  const startAt = String(Date.now() + 4000);
  const spawnWorker = (part: string[]) => run(process.execPath, ["--import", "tsx", worker, path, SUBNET, startAt, ...part]);
  // Interleaved halves: both processes start from an empty table and race for the low slots.
  const [r1, r2] = await Promise.all([
    spawnWorker(ids.filter((_, i) => i % 2 === 0)),
    spawnWorker(ids.filter((_, i) => i % 2 === 1)),
  ]);
  const got = [...(JSON.parse(r1.stdout) as number[]), ...(JSON.parse(r2.stdout) as number[])];
  assert.equal(got.length, 80);
  assert.equal(new Set(got).size, 80, `a slot was handed out twice: ${JSON.stringify(got)}`);
  const reopened = await openStore({ path });
  const leases = await reopened.networkSlots.list();
  assert.deepEqual(
    leases.map((l) => l.slot),
    Array.from({ length: 80 }, (_, i) => i + 1),
  );
  assert.equal(new Set(leases.map((l) => l.machineId)).size, 80);
  await reopened.close();
});
