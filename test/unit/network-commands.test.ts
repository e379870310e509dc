/**
 * The command lists of VM networking (src/network/commands.ts, docs/adr/0008 "Bring-up order"):
 * from each state a crash can leave behind, attach's commands converge; teardown and sweep judge
 * only what is ours. Pure: no command runs here (test/network/fabric.test.ts runs them for real).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  attachCommands,
  detachCommands,
  parseLinks,
  parseNetnsNames,
  parseNsIds,
  strayHostVeths,
  strayNamespaces,
  type AttachFacts,
  type Command,
} from "../../src/network/commands.js";
import { addressPlan, slotPlan } from "../../src/network/address-plan.js";

const sp = slotPlan(addressPlan("10.210.0.0/16"), 3);
const NS = "hf-ab12-vm_A";
const RULES = "table inet hyperfleet {}\n";

const text = (cmds: Command[]) => cmds.map((c) => c.argv.join(" "));

const NS_BATCH = [
  "link set lo up",
  "tuntap add dev tap0 mode tap",
  "link set tap0 address 02:68:66:00:00:01",
  "addr replace 169.254.0.22/30 dev tap0",
  "link set tap0 up",
  "addr replace 10.210.0.7/31 dev hfp0",
  "link set hfp0 up",
  "route replace default via 10.210.0.6 dev hfp0",
  "",
].join("\n");

test("attach from nothing follows the ADR's order: namespace, veth pair, host end, route_localnet, inside, ip_forward, rules", () => {
  const cmds = attachCommands(null, NS, sp, { netns: "absent", nsLinks: [], hostVeth: undefined }, RULES);
  assert.deepEqual(text(cmds), [
    `ip netns add ${NS}`,
    `ip link add hfv3 type veth peer name hfp0 netns ${NS}`,
    "ip -batch -",
    "sysctl -qw net.ipv4.conf.hfv3.route_localnet=1",
    `ip -n ${NS} -batch -`,
    `ip netns exec ${NS} sysctl -qw net.ipv4.ip_forward=1`,
    `ip netns exec ${NS} nft -f -`,
  ]);
  assert.equal(cmds[2]!.input, "addr replace 10.210.0.6/31 dev hfv3\nlink set hfv3 up\n");
  assert.equal(cmds[4]!.input, NS_BATCH);
  assert.equal(cmds[6]!.input, RULES);
});

test("with a host namespace, every host-side command runs in it and nothing in the current one", () => {
  const cmds = attachCommands("hft-x-host", NS, sp, { netns: "absent", nsLinks: [], hostVeth: undefined }, RULES);
  assert.deepEqual(text(cmds).slice(1, 4), [
    `ip -n hft-x-host link add hfv3 type veth peer name hfp0 netns ${NS}`,
    "ip -n hft-x-host -batch -",
    "ip netns exec hft-x-host sysctl -qw net.ipv4.conf.hfv3.route_localnet=1",
  ]);
  for (const c of cmds) {
    const a = c.argv.join(" ");
    assert.ok(/^ip (netns (add|exec) |-n )/.test(a), `runs in a named namespace: ${a}`);
  }
});

test("attach over a complete state creates nothing and only reasserts (replace, up, sysctl, whole-table nft)", () => {
  const facts: AttachFacts = {
    netns: "ok",
    nsLinks: [
      { name: "lo", index: 1 },
      { name: "hfp0", index: 2, peerIndex: 7, peerNsid: 0 },
      { name: "tap0", index: 3 },
    ],
    hostVeth: { name: "hfv3", index: 7, peerIndex: 2, peerNsid: 4 },
  };
  const cmds = attachCommands(null, NS, sp, facts, RULES);
  assert.ok(!text(cmds).some((c) => / add | del /.test(c)), text(cmds).join("\n"));
  assert.doesNotMatch(cmds.find((c) => c.input?.includes("hfp0"))!.input!, /tuntap/);
});

test("half-done states converge: namespace without veth, broken namespace file, a stale or foreign hfv<slot>", () => {
  // Crash after `ip netns add`: reuse the namespace, create the pair.
  const bare = text(attachCommands(null, NS, sp, { netns: "ok", nsLinks: [{ name: "lo", index: 1 }], hostVeth: undefined }, RULES));
  assert.ok(!bare.includes(`ip netns add ${NS}`));
  assert.ok(bare.includes(`ip link add hfv3 type veth peer name hfp0 netns ${NS}`));

  // Crash inside `ip netns add` (file created, never mounted): delete it, then add.
  const broken = text(attachCommands(null, NS, sp, { netns: "broken", nsLinks: [], hostVeth: undefined }, RULES));
  assert.deepEqual(broken.slice(0, 3), [`ip netns del ${NS}`, `ip netns add ${NS}`, `ip link add hfv3 type veth peer name hfp0 netns ${NS}`]);

  // hfv3 whose peer is not our hfp0 (an earlier holder of the slot, or a namespace deleted while a
  // VMM still held it): both ends go and the pair is made again; deletions tolerate "already gone".
  const stale: AttachFacts = {
    netns: "ok",
    nsLinks: [{ name: "hfp0", index: 2, peerIndex: 9 }, { name: "tap0", index: 3 }],
    hostVeth: { name: "hfv3", index: 7, peerIndex: 5, peerNsid: 1 },
  };
  const cmds = attachCommands(null, NS, sp, stale, RULES);
  assert.deepEqual(text(cmds).slice(0, 3), [`ip -n ${NS} link del hfp0`, "ip link del hfv3", `ip link add hfv3 type veth peer name hfp0 netns ${NS}`]);
  assert.ok(cmds[0]!.alreadyDone!.test('Cannot find device "hfp0"'));
  assert.ok(cmds[1]!.alreadyDone!.test('Cannot find device "hfv3"'));
  assert.doesNotMatch(cmds.find((c) => c.input?.includes("hfp0"))!.input!, /tuntap/, "tap0 is kept");
});

test("detach deletes the host end first (the kernel frees a deleted namespace late, or never while a VMM holds it)", () => {
  assert.deepEqual(text(detachCommands(null, NS, "ok", "hfv3")), ["ip link del hfv3", `ip netns del ${NS}`]);
  assert.deepEqual(text(detachCommands("hft-x-host", NS, "broken", undefined)), [`ip netns del ${NS}`]);
  assert.deepEqual(detachCommands(null, NS, "absent", undefined), [], "nothing there: nothing to do");
  const [del] = detachCommands(null, NS, "ok", undefined);
  assert.ok(del!.alreadyDone!.test('Cannot remove namespace file "/run/netns/x": No such file or directory'));
});

test("sweep: only this instance's namespaces of machines not kept; host veths whose peer is one of those or nowhere", () => {
  const names = ["hf-ab12-vm_A", "hf-ab12-vm_B", "hf-cd34-vm_C", "hft-1234-host", "hf-test-99", "other"];
  assert.deepEqual(strayNamespaces("ab12", new Set(["vm_A"]), names), ["hf-ab12-vm_B"]);

  const nsIds = new Map([
    [0, "hf-ab12-vm_A"],
    [1, "hf-ab12-vm_B"],
    [2, "hf-cd34-vm_C"],
    [3, "someone-else"],
  ]);
  const veths = [
    { name: "hfv1", index: 10, peerIndex: 2, peerNsid: 0 }, // kept machine
    { name: "hfv2", index: 11, peerIndex: 2, peerNsid: 1 }, // ours, not kept
    { name: "hfv3", index: 12, peerIndex: 2, peerNsid: 2 }, // another instance's
    { name: "hfv4", index: 13, peerIndex: 2, peerNsid: 3 }, // a foreign named namespace
    { name: "hfv5", index: 14, peerIndex: 2, peerNsid: 7 }, // peer's namespace has no name any more
    { name: "hfv6", index: 15, peerIndex: 16 }, // both ends here: never how we make them
    { name: "veth0", index: 17, peerIndex: 2, peerNsid: 7 }, // not our name
    { name: "hfvx", index: 18, peerIndex: 2, peerNsid: 7 },
  ];
  assert.deepEqual(strayHostVeths("ab12", new Set(["vm_A"]), veths, nsIds), ["hfv2", "hfv5", "hfv6"]);
});

test("ip's JSON: links with and without peers, ids, names; an empty namespace prints nothing", () => {
  const links = parseLinks(
    '[{"ifindex":1,"ifname":"lo"},{"ifindex":2,"link_index":7,"ifname":"hfp0","link_netnsid":0},{"ifindex":3,"ifname":"hfv6","link":"x"}]',
  );
  assert.deepEqual(links, [
    { name: "lo", index: 1 },
    { name: "hfp0", index: 2, peerIndex: 7, peerNsid: 0 },
    { name: "hfv6", index: 3 },
  ]);
  assert.deepEqual(parseLinks(""), []);
  assert.deepEqual(parseLinks("[]"), []);
  assert.deepEqual([...parseNsIds('[{"nsid":0,"name":"hf-a-vm_A"},{"nsid":1}]')], [[0, "hf-a-vm_A"]]);
  assert.deepEqual(parseNetnsNames('[{"name":"hf-a-vm_A","id":0},{"name":"b"}]'), ["hf-a-vm_A", "b"]);
  assert.deepEqual(parseNetnsNames("\n"), []);
});
