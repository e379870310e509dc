/**
 * Restores have slots of their own (HYPERFLEET_MAX_CONCURRENT_RESTORES, docs/snapshots.md "Costs"):
 * with one boot slot taken by a cold boot (over a second under TCG), a clone created meanwhile is
 * running before that boot ends instead of queueing behind it. Two cold boots in all; real VMs.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { json, startTestDaemon, vmSkipReason, type TestDaemon } from "./helpers.js";

const skip = vmSkipReason();
let t: TestDaemon;

type Machine = { id: string; status: string };

before(async () => {
  if (skip) return;
  t = await startTestDaemon({ HYPERFLEET_MAX_CONCURRENT_BOOTS: "1", HYPERFLEET_MAX_VCPUS: "16" });
});
after(async () => {
  if (t) await t.close();
});

async function create(body: Record<string, unknown>): Promise<Machine> {
  const r = await t.req("POST", "/machines", { ...body, start: true });
  assert.equal(r.statusCode, 201, r.body);
  return json<Machine>(r);
}

async function waitFor(id: string, status: string): Promise<void> {
  const r = await t.req("GET", `/machines/${id}/wait?status=${status}&timeout=30`);
  assert.equal(r.statusCode, 200, `${id} -> ${status}: ${r.body}`);
}

test("a clone does not wait for a boot slot held by a cold boot", { skip: skip ?? false }, async () => {
  const source = await create({ name: "slots-src", vcpu_count: 1, mem_size_mib: 256 });
  await waitFor(source.id, "running");
  const snap = await t.req("POST", `/machines/${source.id}/snapshots`);
  assert.equal(snap.statusCode, 201, snap.body);

  const cold = await create({ name: "slots-cold", vcpu_count: 1, mem_size_mib: 256 });
  const clone = await create({ name: "slots-clone", snapshot: json<{ id: string }>(snap).id });
  await waitFor(clone.id, "running");
  // Read at once: the cold boot needs about a second more, the clone about a tenth of that.
  const coldNow = json<Machine>(await t.req("GET", `/machines/${cold.id}`)).status;
  assert.equal(coldNow, "starting", "the clone was restored while the cold boot still held the only boot slot");
  await waitFor(cold.id, "running");
  const r = await t.req("POST", `/machines/${clone.id}/exec`, { command: ["true"] });
  assert.equal(r.statusCode, 200, r.body);
});
