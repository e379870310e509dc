/** Migration 0009 against a real SQLite file: policies survive reopening, events are bounded and go with the machine. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { openStore } from "../../src/store/index.js";
import { EVENTS_KEPT } from "../../src/store/supervision-repository.js";
import { newMachine, tempStore } from "../store-fixtures.js";
import type { WorkloadEvent } from "../../src/core/health.js";

const event = (i: number): WorkloadEvent => ({ kind: "restart", at: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(), message: `restart ${i}`, target: "vm", attempt: i, backoffMs: 1000, health: null });

test("0009: health check and restart policy are kept across reopening, with the counters", async () => {
  const { store, path } = await tempStore();
  await store.machines.insert(newMachine("vm_1"));
  const hc = { probe: { kind: "exec" as const, argv: ["true"] }, intervalS: 1, timeoutS: 2, retries: 3, startPeriodS: 0 };
  await store.supervision.insert("vm_1", hc, { policy: "on-failure", maxRestarts: 2 });
  await store.supervision.setCounters("vm_1", 5, 2);
  await store.close();
  const again = await openStore({ path });
  assert.deepEqual(again.migrations, []);
  assert.deepEqual((await again.supervision.all()).get("vm_1"), { healthCheck: hc, restartPolicy: { policy: "on-failure", maxRestarts: 2 }, restartCount: 5, restartStreak: 2 });
  await again.close();
});

test(`events: the last ${EVENTS_KEPT} per machine, oldest first; deleting the machine removes them and its settings`, async () => {
  const { store } = await tempStore();
  await store.machines.insert(newMachine("vm_1"));
  await store.machines.insert(newMachine("vm_2"));
  await store.supervision.insert("vm_1", null, { policy: "always", maxRestarts: null });
  for (let i = 1; i <= EVENTS_KEPT + 5; i++) await store.supervision.addEvent("vm_1", event(i));
  await store.supervision.addEvent("vm_2", event(1));
  const kept = await store.supervision.events("vm_1");
  assert.equal(kept.length, EVENTS_KEPT);
  assert.deepEqual(kept[0], event(6));
  assert.deepEqual(kept.at(-1), event(EVENTS_KEPT + 5));
  assert.equal((await store.supervision.events("vm_2")).length, 1, "another machine's events are not trimmed");
  await store.machines.delete("vm_1");
  assert.deepEqual(await store.supervision.events("vm_1"), []);
  assert.equal((await store.supervision.all()).has("vm_1"), false);
  // An event for a machine that is gone is dropped, not an error.
  await store.supervision.addEvent("vm_1", event(1));
  assert.deepEqual(await store.supervision.events("vm_1"), []);
  await store.close();
});
