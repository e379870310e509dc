/**
 * MachineNetworks.release (src/machines/networks.ts) with the real LinuxNetworkFabric: deleting a
 * machine whose network never came up (created with a network, never started) changes nothing on
 * the host; the host rules are rebuilt only when a machine that was up goes away. The host is a
 * namespace this test creates (`hft-<rand>-host`), so the root namespace is never touched; every
 * namespace it made is deleted after.
 *
 * Needs root, iproute2, nftables, procps (sysctl).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import type { HyperfleetError } from "../../src/core/errors.js";
import type { MachineNetwork } from "../../src/core/machine.js";
import { MachineNetworks } from "../../src/machines/networks.js";
import { addressPlan, nextFreeSlot, slotPlan } from "../../src/network/address-plan.js";
import { LinuxNetworkFabric } from "../../src/network/fabric.js";
import { macFromMachineId } from "../../src/network/mac.js";
import { newMachine, tempStore } from "../store-fixtures.js";

const IP = "/usr/sbin/ip";
const PLAN = addressPlan("10.210.0.0/16");

function why(): string | null {
  if (process.getuid?.() !== 0) return "needs root (network namespaces)";
  for (const tool of [IP, "/usr/sbin/nft", "/usr/sbin/sysctl"]) if (!existsSync(tool)) return `${tool} is not installed`;
  return null;
}

const sh = (...argv: string[]) => execFileSync(argv[0]!, argv.slice(1), { encoding: "utf8" });
const netnsNames = () => (JSON.parse(sh(IP, "-j", "netns", "list") || "[]") as { name: string }[]).map((n) => n.name);
const hostTables = (host: string) => sh(IP, "netns", "exec", host, "nft", "list", "tables");

function machineId(): string {
  const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  return `vm_${[...randomBytes(26)].map((b) => alphabet[b % 32]).join("")}`;
}

test("release: a machine whose network never came up leaves the host alone; one that was up rebuilds the host rules", { skip: why() ?? false }, async () => {
  const rand = randomBytes(4).toString("hex");
  const host = `hft-${rand}-host`;
  const tag = randomBytes(4).toString("hex");
  sh(IP, "netns", "add", host);
  try {
    const { store } = await tempStore();
    const networks = new MachineNetworks(new LinuxNetworkFabric({ plan: PLAN, tag, hostNetns: host }), store.machines);
    const insert = async () => {
      const id = machineId();
      return store.machines.insert(newMachine(id), {
        pickSlot: (used) => nextFreeSlot(PLAN, used),
        network(slot): MachineNetwork {
          const sp = slotPlan(PLAN, slot);
          return { slot, ip: sp.vmIp, gateway: sp.hostIp, mac: macFromMachineId(id), dns: [], internet: true, allowOut: [], denyOut: [], privateNetwork: null };
        },
        ports: () => Promise.resolve([]),
      });
    };

    const never = await insert();
    await networks.release(never.id);
    assert.doesNotMatch(hostTables(host), /hyperfleet/, "no host table for a machine that never had its network up");

    const started = await insert();
    await networks.attach(started);
    assert.match(hostTables(host), /table inet hyperfleet/);
    await networks.release(started.id);
    assert.match(hostTables(host), /table inet hyperfleet/, "the host rules were rebuilt without it");
    assert.ok(!netnsNames().some((n) => n.startsWith(`hf-${tag}-`)), "its namespace is gone");
  } finally {
    const mine = (n: string) => n.startsWith(`hf-${tag}-`) || n.startsWith(`hft-${rand}-`);
    for (const n of netnsNames().filter(mine)) spawnSync(IP, ["netns", "del", n]);
    assert.deepEqual(netnsNames().filter(mine), [], "no namespace of this test is left");
  }
});

test("attach: a start whose exposed port a host process took since create is refused with PORT_UNAVAILABLE, and nothing comes up", { skip: why() ?? false }, async () => {
  const rand = randomBytes(4).toString("hex");
  const host = `hft-${rand}-host`;
  const tag = randomBytes(4).toString("hex");
  sh(IP, "netns", "add", host);
  // The squatter listens where the probe looks: the test process's own namespace, on loopback.
  const squatter = createServer();
  await new Promise<void>((resolve) => squatter.listen({ host: "127.0.0.1", port: 0 }, resolve));
  const port = (squatter.address() as AddressInfo).port;
  try {
    const { store } = await tempStore();
    const networks = new MachineNetworks(new LinuxNetworkFabric({ plan: PLAN, tag, hostNetns: host }), store.machines);
    const id = machineId();
    const rec = await store.machines.insert(newMachine(id), {
      pickSlot: (used) => nextFreeSlot(PLAN, used),
      network(slot): MachineNetwork {
        const sp = slotPlan(PLAN, slot);
        return { slot, ip: sp.vmIp, gateway: sp.hostIp, mac: macFromMachineId(id), dns: [], internet: true, allowOut: [], denyOut: [], privateNetwork: null };
      },
      ports: () => Promise.resolve([{ protocol: "tcp" as const, hostIp: "127.0.0.1", hostPort: port, guestPort: 80 }]),
    });
    assert.equal(rec.exposedPorts.length, 1);
    await assert.rejects(networks.attach(rec), (e: HyperfleetError) => {
      assert.equal(e.code, "PORT_UNAVAILABLE");
      assert.match(e.message, new RegExp(`127\\.0\\.0\\.1:${port}/tcp`));
      return true;
    });
    assert.ok(!netnsNames().some((n) => n.startsWith(`hf-${tag}-`)), "no namespace was created");
    assert.doesNotMatch(hostTables(host), /hyperfleet/, "no host rules were installed");

    await new Promise<void>((resolve) => squatter.close(() => resolve()));
    const attached = await networks.attach(rec);
    assert.ok(attached, "once the port is free again the start goes ahead");
    await networks.release(id);
  } finally {
    squatter.close();
    const mine = (n: string) => n.startsWith(`hf-${tag}-`) || n.startsWith(`hft-${rand}-`);
    for (const n of netnsNames().filter(mine)) spawnSync(IP, ["netns", "del", n]);
    assert.deepEqual(netnsNames().filter(mine), [], "no namespace of this test is left");
  }
});
