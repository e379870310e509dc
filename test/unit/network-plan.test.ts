/** Pure pieces of VM networking (docs/adr/0008): IPv4/CIDR parsing, the subnet rules, slots, MACs. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { formatIpv4, parseCidr, parseIpv4, subnetProblem } from "../../src/core/ipv4.js";
import { addressPlan, instanceTag, machineOfNetns, netnsName, nextFreeSlot, slotCount, slotOfVmIp, slotPlan } from "../../src/network/address-plan.js";
import { macFromMachineId } from "../../src/network/mac.js";
import { HyperfleetError } from "../../src/core/errors.js";

test("IPv4 parsing takes dotted quads only and round-trips", () => {
  assert.equal(parseIpv4("10.210.0.3"), 0x0ad20003);
  assert.equal(formatIpv4(0x0ad20003), "10.210.0.3");
  assert.equal(formatIpv4(parseIpv4("255.255.255.255")!), "255.255.255.255");
  for (const bad of ["10.210.0", "10.210.0.256", "010.1.1.1", "1.2.3.4.5", "a.b.c.d", "", " 1.2.3.4", "1.2.3.-1"]) {
    assert.equal(parseIpv4(bad), undefined, bad);
  }
});

test("CIDR parsing: a bare address is a /32, host bits are refused unless loose", () => {
  assert.deepEqual(parseCidr("10.0.0.0/8"), { base: 0x0a000000, prefix: 8 });
  assert.deepEqual(parseCidr("1.2.3.4"), { base: 0x01020304, prefix: 32 });
  assert.equal(parseCidr("10.0.0.1/8"), undefined);
  assert.deepEqual(parseCidr("10.0.0.1/8", false), { base: 0x0a000000, prefix: 8 });
  assert.equal(parseCidr("10.0.0.0/33"), undefined);
  assert.equal(parseCidr("0.0.0.0/0")?.prefix, 0);
});

test("HYPERFLEET_SUBNET rules: IPv4 CIDR, /16 to /29, clear of loopback, link-local, multicast", () => {
  assert.equal(subnetProblem("10.210.0.0/16"), undefined);
  assert.equal(subnetProblem("192.168.77.0/29"), undefined);
  assert.match(subnetProblem("10.210.0.0")!, /IPv4 CIDR/);
  assert.match(subnetProblem("fd00::/64")!, /IPv4 CIDR/);
  assert.match(subnetProblem("10.210.0.1/16")!, /host bits set: did you mean 10\.210\.0\.0\/16/);
  assert.match(subnetProblem("10.0.0.0/8")!, /from \/16 to \/29, got \/8/);
  assert.match(subnetProblem("10.0.0.0/30")!, /got \/30/);
  assert.match(subnetProblem("127.5.0.0/16")!, /overlap 127\.0\.0\.0\/8/);
  assert.match(subnetProblem("169.254.0.0/16")!, /overlap 169\.254\.0\.0\/16/);
  assert.match(subnetProblem("230.1.0.0/16")!, /overlap 224\.0\.0\.0\/3/);
  assert.throws(() => addressPlan("10.0.0.0/8"), (e) => e instanceof HyperfleetError && e.code === "CONFIG_INVALID");
});

test("slots: slot i is B+2i (host veth) and B+2i+1 (the VM); the first and last slot are never used", () => {
  const plan = addressPlan("10.210.0.0/16");
  assert.equal(plan.firstSlot, 1);
  assert.equal(plan.lastSlot, 32766);
  assert.equal(slotCount(plan), 32766);
  assert.deepEqual(slotPlan(plan, 1), {
    slot: 1,
    hostVeth: "hfv1",
    hostIp: "10.210.0.2",
    vmIp: "10.210.0.3",
  });
  const last = slotPlan(plan, plan.lastSlot);
  assert.equal(last.vmIp, "10.210.255.253");
  assert.ok(last.hostVeth.length <= 15, "IFNAMSIZ");
  assert.throws(() => slotPlan(plan, 0));
  assert.throws(() => slotPlan(plan, 32767));
  // A /29 has two usable slots: .2/.3 and .4/.5 (not .0/.1 with the network address, nor .6/.7).
  const small = addressPlan("192.168.77.0/29");
  assert.deepEqual([small.firstSlot, small.lastSlot], [1, 2]);
  assert.equal(slotPlan(small, 2).vmIp, "192.168.77.5");
});

test("nextFreeSlot: the lowest gap, then past the used ones, then none", () => {
  const plan = addressPlan("192.168.77.0/28"); // slots 1..6
  assert.equal(nextFreeSlot(plan, new Set()), 1);
  assert.equal(nextFreeSlot(plan, new Set([1, 2, 4])), 3);
  assert.equal(nextFreeSlot(plan, new Set([1, 2, 3])), 4);
  assert.equal(nextFreeSlot(plan, new Set([0, 7, 99])), 1, "out-of-range used slots are ignored");
  assert.equal(nextFreeSlot(plan, new Set([1, 2, 3, 4, 5, 6])), undefined);
});

test("slotOfVmIp finds the slot of a VM address and nothing else", () => {
  const plan = addressPlan("10.210.0.0/16");
  assert.equal(slotOfVmIp(plan, parseIpv4("10.210.0.3")!), 1);
  assert.equal(slotOfVmIp(plan, parseIpv4("10.210.1.1")!), 128);
  assert.equal(slotOfVmIp(plan, parseIpv4("10.210.0.2")!), undefined, "a host veth address");
  assert.equal(slotOfVmIp(plan, parseIpv4("10.210.0.1")!), undefined, "slot 0");
  assert.equal(slotOfVmIp(plan, parseIpv4("10.210.255.255")!), undefined, "the last slot");
  assert.equal(slotOfVmIp(plan, parseIpv4("10.211.0.3")!), undefined, "outside");
});

test("MAC from the machine id: stable, unicast, locally administered, distinct per id", () => {
  const ids = Array.from({ length: 2000 }, (_, i) => `vm_01J9Z6Y8W2V4T0S5R3Q1P7N${String(i).padStart(4, "0")}`);
  const macs = ids.map(macFromMachineId);
  for (const mac of macs) {
    assert.match(mac, /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
    const first = parseInt(mac.slice(0, 2), 16);
    assert.equal(first & 1, 0, `${mac} is multicast`);
    assert.equal(first & 2, 2, `${mac} is not locally administered`);
  }
  assert.equal(new Set(macs).size, ids.length);
  assert.equal(macFromMachineId(ids[0]!), macs[0]);
  assert.equal(macFromMachineId("vm_TEST"), macFromMachineId("vm_TEST"));
});

test("namespace names carry the instance tag, so one daemon never takes another's namespaces for strays", () => {
  const id = "vm_01J9Z6Y8W2V4T0S5R3Q1P7N9M8";
  assert.equal(netnsName("ab12", id), `hf-ab12-${id}`);
  assert.equal(machineOfNetns("ab12", `hf-ab12-${id}`), id);
  assert.equal(machineOfNetns("ab12", `hf-cd34-${id}`), undefined, "another instance's");
  assert.equal(machineOfNetns("ab12", "hf-ab12-"), undefined);
  assert.equal(machineOfNetns("ab12", "hf-ab12-x/y"), undefined);
  assert.equal(machineOfNetns("ab1", `hf-ab12-${id}`), undefined, "a tag that is a prefix of another is not it");
  assert.throws(() => netnsName("AB", id), (e) => e instanceof HyperfleetError && e.code === "INTERNAL");
  assert.throws(() => netnsName("ab12", "../x"), (e) => e instanceof HyperfleetError);
  // Stable per seed (the daemon's data dir), different across seeds, short enough for any path.
  assert.equal(instanceTag("/var/lib/hyperfleet"), instanceTag("/var/lib/hyperfleet"));
  assert.notEqual(instanceTag("/var/lib/hyperfleet"), instanceTag("/tmp/hf-test-1"));
  assert.match(instanceTag("/x"), /^[0-9a-f]{8}$/);
});
