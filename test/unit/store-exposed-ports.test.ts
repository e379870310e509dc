/**
 * A networked machine's insert (MachineRepository.insert with a NetworkClaim, docs/adr/0008) on a
 * real SQLite file: slot, ports and network JSON together or not at all; ports read back sorted
 * for get, list (one query for all machines) and transitions; released with the machine.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import Database from "better-sqlite3";
import { HyperfleetError, isHyperfleetError } from "../../src/core/errors.js";
import type { ExposedPort, MachineNetwork } from "../../src/core/machine.js";
import type { NetworkClaim } from "../../src/store/machine-repository.js";
import { addressPlan, nextFreeSlot, slotPlan } from "../../src/network/address-plan.js";
import { newMachine, tempStore } from "../store-fixtures.js";

const plan = addressPlan("10.210.0.0/16");

function claim(id: string, ports: (held: readonly ExposedPort[]) => ExposedPort[] | Promise<ExposedPort[]>): NetworkClaim {
  return {
    pickSlot: (used) => nextFreeSlot(plan, used),
    network(slot): MachineNetwork {
      const s = slotPlan(plan, slot);
      return { slot, ip: s.vmIp, gateway: s.hostIp, mac: "02:00:00:00:00:01", dns: [], internet: true, allowOut: [], denyOut: [], privateNetwork: null };
    },
    ports: async (held) => ports(held),
  };
}

const tcp = (hostPort: number, guestPort = 80, hostIp = "127.0.0.1"): ExposedPort => ({ protocol: "tcp", hostIp, hostPort, guestPort });
const udp = (hostPort: number, guestPort = 53): ExposedPort => ({ protocol: "udp", hostIp: "127.0.0.1", hostPort, guestPort });

test("insert with a claim records the network and the ports; get, list and transitions read the ports back sorted", async () => {
  const { store } = await tempStore();
  const a = await store.machines.insert(newMachine("vm_a"), claim("vm_a", () => [udp(5353), tcp(9000), tcp(8080)]));
  assert.equal(a.network?.ip, "10.210.0.3");
  assert.equal(a.network?.slot, 1);
  const sorted = [tcp(8080), tcp(9000), udp(5353)];
  assert.deepEqual((await store.machines.get("vm_a"))?.exposedPorts, sorted);
  assert.deepEqual((await store.machines.get("vm_a"))?.network, a.network);
  let seen: readonly ExposedPort[] = [];
  await store.machines.insert(newMachine("vm_b"), claim("vm_b", (held) => ((seen = held), [tcp(7000)])));
  assert.deepEqual([...seen].sort((x, y) => x.hostPort - y.hostPort), [udp(5353), tcp(8080), tcp(9000)], "the claim sees the other machines' ports");
  await store.machines.insert(newMachine("vm_c"));
  const listed = await store.machines.list();
  assert.deepEqual(
    listed.map((m) => [m.id, m.exposedPorts.map((p) => p.hostPort), m.network?.ip ?? null]),
    [
      ["vm_a", [8080, 9000, 5353], "10.210.0.3"],
      ["vm_b", [7000], "10.210.0.5"],
      ["vm_c", [], null],
    ],
  );
  assert.deepEqual((await store.machines.transition("vm_a", ["created"], "starting"))?.exposedPorts, sorted);
  assert.deepEqual((await store.machines.update("vm_a", { pid: 1 }))?.exposedPorts, sorted);
});

test("a claim that fails leaves nothing: no machine, no event, no slot, no port", async () => {
  const { store, path } = await tempStore();
  await store.machines.insert(newMachine("vm_a"), claim("vm_a", () => [tcp(8080)]));
  await assert.rejects(
    store.machines.insert(newMachine("vm_b"), claim("vm_b", () => Promise.reject(new HyperfleetError("PORT_UNAVAILABLE", "taken")))),
    (e: unknown) => isHyperfleetError(e, "PORT_UNAVAILABLE"),
  );
  // A name clash fails before the claim is asked.
  let asked = false;
  await assert.rejects(
    store.machines.insert(newMachine("vm_c", "vm_a"), claim("vm_c", () => ((asked = true), []))),
    (e: unknown) => isHyperfleetError(e, "MACHINE_ALREADY_EXISTS"),
  );
  assert.equal(asked, false);
  // The exact clash a writer skipping the transaction's checks would hit: the constraint refuses it.
  await assert.rejects(
    store.machines.insert(newMachine("vm_d"), claim("vm_d", () => [tcp(8080)])),
    (e: unknown) => isHyperfleetError(e, "PORT_UNAVAILABLE"),
  );
  const db = new Database(path, { readonly: true });
  try {
    for (const table of ["machines", "machine_events", "network_slots", "exposed_ports"]) {
      const ids = db.prepare(`SELECT DISTINCT ${table === "machines" ? "id" : "machine_id"} AS id FROM ${table}`).all() as Array<{ id: string }>;
      assert.deepEqual(ids.map((r) => r.id), ["vm_a"], table);
    }
  } finally {
    db.close();
  }
});

test("no free slot is INSUFFICIENT_CAPACITY and leaves nothing", async () => {
  const { store } = await tempStore();
  const full: NetworkClaim = { ...claim("vm_a", () => []), pickSlot: () => undefined };
  await assert.rejects(store.machines.insert(newMachine("vm_a"), full), (e: unknown) => isHyperfleetError(e, "INSUFFICIENT_CAPACITY"));
  assert.equal((await store.machines.list()).length, 0);
});

test("deleting the machine releases its slot and its ports", async () => {
  const { store } = await tempStore();
  await store.machines.insert(newMachine("vm_a"), claim("vm_a", () => [tcp(8080)]));
  assert.equal(await store.machines.delete("vm_a"), true);
  assert.deepEqual(await store.networkSlots.list(), []);
  const b = await store.machines.insert(newMachine("vm_b"), claim("vm_b", (held) => (assert.deepEqual(held, []), [tcp(8080)])));
  assert.equal(b.network?.slot, 1);
  assert.deepEqual(b.exposedPorts, [tcp(8080)]);
});
