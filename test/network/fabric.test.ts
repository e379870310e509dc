/**
 * LinuxNetworkFabric against the real kernel (docs/adr/0008): namespaces, veths, TAPs, sysctls and
 * nftables, read back with `ip` and `nft`. Each test plays the host in a namespace it creates
 * (`hft-<rand>-host`, the fabric's hostNetns) with its own instance tag, so the root namespace's
 * links, tables and sysctls are never touched; every namespace it made is deleted after, and a
 * check says so. The only packets are pings between those namespaces.
 *
 * Needs root and iproute2, nftables, procps (sysctl), util-linux (nsenter), busybox (ping).
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, writeFileSync } from "node:fs";
import { isHyperfleetError } from "../../src/core/errors.js";
import type { MachineNetwork } from "../../src/core/machine.js";
import type { VmNetworkSpec } from "../../src/core/ports/network.js";
import { addressPlan, slotPlan } from "../../src/network/address-plan.js";
import { LinuxNetworkFabric } from "../../src/network/fabric.js";
import { macFromMachineId } from "../../src/network/mac.js";

const IP = "/usr/sbin/ip";
const BUSYBOX = "/usr/bin/busybox";
const PLAN = addressPlan("10.210.0.0/16");

function why(): string | null {
  if (process.getuid?.() !== 0) return "needs root (network namespaces)";
  for (const tool of [IP, "/usr/sbin/nft", "/usr/sbin/sysctl", "/usr/bin/nsenter", BUSYBOX]) if (!existsSync(tool)) return `${tool} is not installed`;
  return null;
}
const skip = why();

const sh = (...argv: string[]) => execFileSync(argv[0]!, argv.slice(1), { encoding: "utf8" });
const ipIn = (ns: string, ...args: string[]) => sh(IP, "-n", ns, ...args);
const inNs = (ns: string, ...argv: string[]) => sh(IP, "netns", "exec", ns, ...argv);
const sysctlIn = (ns: string, key: string) => inNs(ns, "sysctl", "-n", key).trim();
const table = (ns: string) => inNs(ns, "nft", "list", "table", "inet", "hyperfleet");
const netnsNames = () => (JSON.parse(sh(IP, "-j", "netns", "list") || "[]") as { name: string }[]).map((n) => n.name);
const hex = (n: number) => randomBytes(n).toString("hex");

/** A machine id of the real shape (`vm_<ULID>`); random, so loops never meet an earlier run's. */
function machineId(): string {
  const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  return `vm_${[...randomBytes(26)].map((b) => alphabet[b % 32]).join("")}`;
}

function vmSpec(slot: number, policy: Partial<MachineNetwork> = {}, ports: VmNetworkSpec["exposedPorts"] = []): VmNetworkSpec {
  const id = machineId();
  const sp = slotPlan(PLAN, slot);
  const network: MachineNetwork = {
    slot,
    ip: sp.vmIp,
    gateway: sp.hostIp,
    mac: macFromMachineId(id),
    dns: [],
    internet: true,
    allowOut: [],
    denyOut: [],
    privateNetwork: null,
    ...policy,
  };
  return { machineId: id, network, exposedPorts: ports };
}

interface World {
  host: string;
  tag: string;
  fabric: LinuxNetworkFabric;
  /** Name for a helper namespace of this test (deleted after). */
  scratch(role: string): string;
  /** A process that holds a namespace open after its name is deleted (as a VMM still running would). */
  holdOpen(ns: string): Promise<void>;
}

/** Runs `fn` with its own host namespace and tag; deletes every namespace it made, then checks. */
async function withWorld(t: TestContext, fn: (w: World) => Promise<void>): Promise<void> {
  const rand = hex(4);
  const host = `hft-${rand}-host`;
  const tag = hex(4);
  const holders: number[] = [];
  sh(IP, "netns", "add", host);
  const w: World = {
    host,
    tag,
    fabric: new LinuxNetworkFabric({ plan: PLAN, tag, hostNetns: host }),
    scratch: (role) => `hft-${rand}-${role}`,
    // Resolves once the holder is inside the namespace: deleting the name right after a bare
    // spawn could beat `ip netns exec` to it, and nothing would hold the namespace.
    holdOpen: (ns) =>
      new Promise<void>((resolve, reject) => {
        const p = spawn(IP, ["netns", "exec", ns, "sh", "-c", "echo in; exec sleep 60"], { stdio: ["ignore", "pipe", "ignore"] });
        holders.push(p.pid!);
        p.stdout.once("data", () => resolve());
        p.once("exit", (code) => reject(new Error(`the holder of ${ns} exited (${code}) before entering it`)));
      }),
  };
  try {
    await fn(w);
  } finally {
    for (const pid of holders) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone (one that failed to enter its namespace rejected holdOpen above)
      }
    }
    const mine = (n: string) => n.startsWith(`hf-${tag}-`) || n.startsWith(`hft-${rand}-`);
    for (const n of netnsNames().filter(mine)) spawnSync(IP, ["netns", "del", n]);
    assert.deepEqual(netnsNames().filter(mine), [], `${t.name}: no namespace of this test is left`);
  }
}

/** Links (name, index, state), addresses, routes and rules: equal snapshots mean nothing was recreated. */
function snapshot(w: World, ns: string): string {
  return [ipIn(w.host, "-j", "addr"), ipIn(ns, "-j", "addr"), ipIn(ns, "route"), table(ns), table(w.host)].join("\n");
}

function assertUp(w: World, vm: VmNetworkSpec): void {
  const ns = w.fabric.netnsOf(vm.machineId);
  const { slot, ip, gateway } = vm.network;
  assert.ok(netnsNames().includes(ns), `${ns} exists`);
  assert.match(ipIn(ns, "-br", "addr", "show", "dev", "hfp0"), new RegExp(`^hfp0@\\S+\\s+UP\\s+${ip.replaceAll(".", "\\.")}/31`));
  assert.match(ipIn(ns, "-br", "addr", "show", "dev", "tap0"), /^tap0\s+\S+\s+169\.254\.0\.22\/30/);
  assert.match(ipIn(ns, "-br", "link", "show", "dev", "lo"), /UNKNOWN|UP/);
  assert.match(ipIn(ns, "-d", "link", "show", "dev", "tap0"), /tun type tap/);
  assert.match(ipIn(ns, "route", "show", "default"), new RegExp(`default via ${gateway.replaceAll(".", "\\.")} dev hfp0`));
  assert.equal(sysctlIn(ns, "net.ipv4.ip_forward"), "1");
  assert.match(table(ns), new RegExp(`dnat ip to 169\\.254\\.0\\.21`));
  assert.match(ipIn(w.host, "-br", "addr", "show", "dev", `hfv${slot}`), new RegExp(`^hfv${slot}@\\S+\\s+UP\\s+${gateway.replaceAll(".", "\\.")}/31`));
  assert.equal(sysctlIn(w.host, `net.ipv4.conf.hfv${slot}.route_localnet`), "1");
}

function assertGone(w: World, vm: VmNetworkSpec): void {
  assert.ok(!netnsNames().includes(w.fabric.netnsOf(vm.machineId)), "namespace deleted");
  assert.doesNotMatch(ipIn(w.host, "-br", "link"), new RegExp(`^hfv${vm.network.slot}@`, "m"), "host veth deleted");
}

/** One ping from inside `ns`; true if answered. */
function pings(ns: string, to: string): boolean {
  return spawnSync(IP, ["netns", "exec", ns, BUSYBOX, "ping", "-c", "1", "-W", "2", to], { timeout: 10_000 }).status === 0;
}

test("init forwards and installs the (empty) host table; attach brings two VMs up; again changes nothing", { skip: skip ?? false }, async (t) => {
  await withWorld(t, async (w) => {
    await w.fabric.init();
    assert.equal(sysctlIn(w.host, "net.ipv4.ip_forward"), "1");
    assert.doesNotMatch(table(w.host), /egress_/);
    await w.fabric.init(); // idempotent

    const a = vmSpec(1);
    const b = vmSpec(2, { internet: false, privateNetwork: "team" });
    const [ra, rb] = await Promise.all([w.fabric.attach(a), w.fabric.attach(b)]);
    assert.deepEqual(ra, { netnsPath: `/run/netns/hf-${w.tag}-${a.machineId}`, nic: { tap: "tap0", mac: a.network.mac } });
    assert.equal(rb.netnsPath, `/run/netns/${w.fabric.netnsOf(b.machineId)}`);
    assert.ok(existsSync(ra.netnsPath));
    for (const vm of [a, b]) assertUp(w, vm);
    // route_localnet is for our veths only, never the namespace-wide switch (CVE-2020-8558).
    assert.equal(sysctlIn(w.host, "net.ipv4.conf.all.route_localnet"), "0");

    await w.fabric.applyHostRules([a, b]);
    const hostTable = table(w.host);
    assert.match(hostTable, /chain egress_1/);
    assert.match(hostTable, /chain egress_2/);
    assert.match(hostTable, /"hfv1" \. 10\.210\.0\.3/);

    const before = snapshot(w, w.fabric.netnsOf(a.machineId));
    assert.deepEqual(await w.fabric.attach(a), ra);
    assert.equal(snapshot(w, w.fabric.netnsOf(a.machineId)), before, "same links (same ifindex), addresses, routes, rules");
    assertUp(w, b);

    // Data plane, no VM needed: the namespace reaches its host end only while our table is absent.
    assert.equal(pings(w.fabric.netnsOf(a.machineId), a.network.gateway), false, "the host is closed to VMs");
    inNs(w.host, "nft", "delete", "table", "inet", "hyperfleet");
    assert.equal(pings(w.fabric.netnsOf(a.machineId), a.network.gateway), true, "the path itself works");
    await w.fabric.applyHostRules([a, b]);
    assert.equal(pings(w.fabric.netnsOf(a.machineId), a.network.gateway), false);

    await Promise.all([w.fabric.detach(a.machineId), w.fabric.detach(b.machineId)]);
  });
});

test("attach converges from half-done states: bare namespace, broken namespace file, stale veth, lost tap and addresses", { skip: skip ?? false }, async (t) => {
  await withWorld(t, async (w) => {
    // A crash right after `ip netns add`.
    const bare = vmSpec(1);
    sh(IP, "netns", "add", w.fabric.netnsOf(bare.machineId));
    await w.fabric.attach(bare);
    assertUp(w, bare);

    // A crash inside `ip netns add`: the file exists, no namespace is mounted on it.
    const broken = vmSpec(2);
    writeFileSync(`/run/netns/${w.fabric.netnsOf(broken.machineId)}`, "");
    await w.fabric.attach(broken);
    assertUp(w, broken);

    // hfv3 left over, paired with another namespace (the slot's previous holder).
    const stale = vmSpec(3);
    const old = w.scratch("old");
    sh(IP, "netns", "add", old);
    ipIn(w.host, "link", "add", "hfv3", "type", "veth", "peer", "name", "hfp0", "netns", old);
    await w.fabric.attach(stale);
    assertUp(w, stale);
    assert.doesNotMatch(ipIn(old, "-br", "link"), /hfp0/, "the old pair is gone");

    // Someone deleted tap0 and the host end's address: attach puts them back without a new pair.
    const ns = w.fabric.netnsOf(bare.machineId);
    const pair = ipIn(ns, "-br", "link", "show", "dev", "hfp0");
    ipIn(ns, "link", "del", "tap0");
    ipIn(w.host, "addr", "flush", "dev", "hfv1");
    await w.fabric.attach(bare);
    assertUp(w, bare);
    assert.equal(ipIn(ns, "-br", "link", "show", "dev", "hfp0"), pair, "the veth pair was kept");

    for (const vm of [bare, broken, stale]) await w.fabric.detach(vm.machineId);
    for (const vm of [bare, broken, stale]) assertGone(w, vm);
  });
});

test("detach removes namespace, tap and veth at once, also while a process still holds the namespace; twice is fine", { skip: skip ?? false }, async (t) => {
  await withWorld(t, async (w) => {
    const a = vmSpec(1);
    const b = vmSpec(2);
    await w.fabric.attach(a);
    await w.fabric.attach(b);
    await w.fabric.detach(a.machineId);
    assertGone(w, a);
    assertUp(w, b);

    // A VMM that has not exited keeps its namespace alive after the name is gone; the veth must
    // still go now, not when that process exits.
    await w.holdOpen(w.fabric.netnsOf(b.machineId));
    await w.fabric.detach(b.machineId);
    assertGone(w, b);

    await w.fabric.detach(a.machineId);
    await w.fabric.detach(machineId()); // never attached
  });
});

test("sweep deletes this instance's strays and orphaned veths, keeps kept machines and another instance's namespace", { skip: skip ?? false }, async (t) => {
  await withWorld(t, async (w) => {
    const kept = vmSpec(1);
    const gone = vmSpec(2);
    await w.fabric.attach(kept);
    await w.fabric.attach(gone);

    // A stray of ours made by hand (a crash between steps): namespace + veth hfv9.
    const strayId = machineId();
    const strayNs = w.fabric.netnsOf(strayId);
    sh(IP, "netns", "add", strayNs);
    ipIn(w.host, "link", "add", "hfv9", "type", "veth", "peer", "name", "hfp0", "netns", strayNs);
    // Another daemon's namespace, with its veth in our host namespace: not ours to judge.
    const otherNs = `hf-${hex(4)}-${machineId()}`;
    sh(IP, "netns", "add", otherNs);
    try {
      ipIn(w.host, "link", "add", "hfv10", "type", "veth", "peer", "name", "hfp0", "netns", otherNs);
      // An orphan: its peer's namespace was deleted while a process held it (no name any more).
      const orphanNs = w.scratch("orphan");
      sh(IP, "netns", "add", orphanNs);
      ipIn(w.host, "link", "add", "hfv11", "type", "veth", "peer", "name", "hfp0", "netns", orphanNs);
      await w.holdOpen(orphanNs);
      sh(IP, "netns", "del", orphanNs);

      const swept = await w.fabric.sweep(new Set([kept.machineId]));
      assert.deepEqual([...swept.namespaces].sort(), [w.fabric.netnsOf(gone.machineId), strayNs].sort());
      assert.deepEqual([...swept.links].sort(), ["hfv11", "hfv2", "hfv9"]);
      assertUp(w, kept);
      assertGone(w, gone);
      assert.ok(!netnsNames().includes(strayNs));
      const hostLinks = ipIn(w.host, "-br", "link");
      assert.doesNotMatch(hostLinks, /^hfv(9|11)@/m);
      assert.match(hostLinks, /^hfv10@/m, "another instance's veth stays");
      assert.ok(netnsNames().includes(otherNs), "another instance's namespace stays");

      assert.deepEqual(await w.fabric.sweep(new Set([kept.machineId])), { namespaces: [], links: [] }, "a second sweep finds nothing");
      await w.fabric.detach(kept.machineId);
    } finally {
      spawnSync(IP, ["netns", "del", otherNs]);
    }
  });
});

test("applyHostRules: concurrent calls end with the last call's table; a bad spec rejects alone", { skip: skip ?? false }, async (t) => {
  await withWorld(t, async (w) => {
    const states = Array.from({ length: 8 }, (_, i) => [
      vmSpec(i + 1, {}, [{ protocol: "tcp", hostIp: "127.0.0.1", hostPort: 20_000 + i, guestPort: 80 }]),
    ]);
    const bad = vmSpec(20);
    bad.network.ip = "10.210.0.99";
    const calls = states.map((s) => w.fabric.applyHostRules(s));
    const refused = assert.rejects(w.fabric.applyHostRules([bad]), (e) => isHyperfleetError(e, "CONFIG_INVALID"));
    await Promise.all([...calls, refused]);
    const listed = table(w.host);
    assert.match(listed, /chain egress_8/);
    assert.match(listed, /tcp dport 20007 dnat ip to 10\.210\.0\.17:80/);
    for (let i = 1; i < 8; i++) assert.doesNotMatch(listed, new RegExp(`egress_${i}\\b|dport ${20_000 + i - 1}\\b`));
    // init after rules were set re-applies the latest state, never an empty table over it.
    await w.fabric.init();
    assert.match(table(w.host), /chain egress_8/);
  });
});
