/**
 * The nftables rulesets of VM networking (docs/adr/0008): golden text, then the real `nft` parses
 * it (`nft -c`) and applies it twice, inside a network namespace this test creates and deletes.
 * Nothing is applied to the host's own ruleset and no packet is sent.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";
import { buildHostRuleset, buildNamespaceRuleset, privateNetworkSet, type HostRulesInput, type VmRules } from "../../src/network/nft.js";
import { addressPlan, slotPlan } from "../../src/network/address-plan.js";
import { HyperfleetError } from "../../src/core/errors.js";

const run = promisify(execFile);
const golden = (name: string) => fileURLToPath(new URL(`./golden/${name}`, import.meta.url));

/** Compares with the stored golden file; UPDATE_GOLDEN=1 rewrites it after a deliberate change. */
function assertGolden(name: string, actual: string) {
  if (process.env.UPDATE_GOLDEN) writeFileSync(golden(name), actual);
  assert.equal(actual, readFileSync(golden(name), "utf8"));
}

const plan = addressPlan("10.210.0.0/16");

function vm(slot: number, _id: string, rest: Partial<VmRules> = {}): VmRules {
  const p = slotPlan(plan, slot);
  return { slot, hostVeth: p.hostVeth, vmIp: p.vmIp, internet: true, allowOut: [], denyOut: [], privateNetwork: null, ports: [], ...rest };
}

/** Three VMs: two share a private network, one is offline with a metadata exception. */
const FLEET: HostRulesInput = {
  subnet: "10.210.0.0/16",
  vms: [
    vm(3, "vm_C", {
      internet: false,
      allowOut: ["169.254.169.254/32"],
      ports: [{ protocol: "tcp", hostIp: "192.0.2.10", hostPort: 9000, guestPort: 80 }],
    }),
    vm(1, "vm_A", {
      denyOut: ["10.0.0.0/8", "192.168.0.0/16"],
      privateNetwork: "team-a",
      ports: [
        { protocol: "udp", hostIp: "0.0.0.0", hostPort: 5353, guestPort: 53 },
        { protocol: "tcp", hostIp: "127.0.0.1", hostPort: 18080, guestPort: 8080 },
      ],
    }),
    vm(2, "vm_B", { privateNetwork: "team-a", allowOut: ["203.0.113.0/24"] }),
  ],
};

test("host ruleset for a fleet matches the golden file", () => {
  assertGolden("nft-host.nft", buildHostRuleset(FLEET));
});

test("host ruleset with no VMs still isolates the host and masquerades (golden)", () => {
  assertGolden("nft-host-empty.nft", buildHostRuleset({ subnet: "10.210.0.0/16", vms: [] }));
});

test("namespace ruleset maps the shared guest address to the VM's own (golden)", () => {
  assertGolden("nft-namespace.nft", buildNamespaceRuleset("10.210.0.3"));
});

test("rule order: allow_out beats the always-deny list, never other VMs; internet decides last", () => {
  const text = buildHostRuleset(FLEET);
  const body = (chain: string) => new RegExp(`chain ${chain} \\{\n([\\s\\S]*?)\n\t\\}`).exec(text)![1]!;
  const egress3 = body("egress_3").trim().split(/\n\s*/);
  assert.deepEqual(egress3, [
    "ct state established,related accept",
    "ip daddr 10.210.0.0/16 drop",
    "ip daddr 169.254.169.254/32 accept",
    "ip daddr { 169.254.0.0/16, 224.0.0.0/4, 255.255.255.255/32 } drop",
    "drop",
  ]);
  const egress1 = body("egress_1");
  assert.match(egress1, /ip daddr 10\.0\.0\.0\/8 drop\n\s*ip daddr 192\.168\.0\.0\/16 drop\n\s*accept$/);
  // A loopback-bound port is only reachable from the host itself: output chain, never prerouting.
  const prerouting = body("prerouting");
  const output = body("output");
  assert.doesNotMatch(prerouting, /127\.0\.0\.1/);
  assert.match(output, /ip daddr 127\.0\.0\.1 tcp dport 18080 dnat ip to 10\.210\.0\.3:8080/);
  // Only team-a members are in its set (vm_C, 10.210.0.7, is in none).
  assert.match(text, /set pn_team-a \{\n\s*type ipv4_addr\n\s*elements = \{ 10\.210\.0\.3, 10\.210\.0\.5 \}/);
});

test("values are parsed before they reach the text: nothing can be smuggled into a rule", () => {
  const bad: Array<Partial<VmRules>> = [
    { allowOut: ["1.2.3.0/24; flush ruleset"] },
    { denyOut: ["10.0.0.1/8"] },
    { vmIp: "10.210.0.3 accept" },
    { hostVeth: 'hfv1" accept #' },
    { ports: [{ protocol: "tcp", hostIp: "127.0.0.1", hostPort: 0, guestPort: 80 }] },
    { ports: [{ protocol: "tcp", hostIp: "localhost", hostPort: 80, guestPort: 80 }] },
  ];
  for (const b of bad) {
    assert.throws(
      () => buildHostRuleset({ subnet: "10.210.0.0/16", vms: [vm(1, "vm_A", b)] }),
      (e) => e instanceof HyperfleetError && e.code === "INTERNAL",
      JSON.stringify(b),
    );
  }
  assert.throws(() => buildHostRuleset({ subnet: "10.210.0.0/16 drop", vms: [] }));
  assert.throws(() => buildNamespaceRuleset("10.210.0.3; flush ruleset"));
  // Names outside a safe alphabet become a hash, never quoted text.
  assert.equal(privateNetworkSet("team-a"), "pn_team-a");
  assert.match(privateNetworkSet('x" } flush ruleset'), /^pn__[0-9a-f]{16}$/);
  assert.match(privateNetworkSet("Team A"), /^pn__[0-9a-f]{16}$/);
  assert.notEqual(privateNetworkSet("Team A"), privateNetworkSet("Team B"));
});

test("the real nft accepts every ruleset (check mode) and applies them idempotently in a throwaway namespace", async (t) => {
  if (process.getuid?.() !== 0) {
    t.skip("needs root to create a network namespace");
    return;
  }
  const ns = `hf-test-${randomBytes(4).toString("hex")}`;
  const dir = mkdtempSync(join(tmpdir(), "hf-nft-"));
  await run("ip", ["netns", "add", ns]);
  try {
    const nft = (...args: string[]) => run("ip", ["netns", "exec", ns, "nft", ...args]);
    const files: Record<string, string> = {
      host: buildHostRuleset(FLEET),
      empty: buildHostRuleset({ subnet: "10.210.0.0/16", vms: [] }),
      namespace: buildNamespaceRuleset("10.210.0.3"),
    };
    for (const [name, text] of Object.entries(files)) {
      writeFileSync(join(dir, `${name}.nft`), text);
      await nft("-c", "-f", join(dir, `${name}.nft`));
    }
    // Applied twice: the declare-delete-define preamble works whether the table exists or not.
    await nft("-f", join(dir, "host.nft"));
    await nft("-f", join(dir, "host.nft"));
    const listed = (await nft("list", "table", "inet", "hyperfleet")).stdout;
    assert.match(listed, /chain egress_3/);
    // Replacing with the empty fleet leaves no VM's chain behind.
    await nft("-f", join(dir, "empty.nft"));
    const after = (await nft("list", "ruleset")).stdout;
    assert.doesNotMatch(after, /egress_|pn_team-a/);
    assert.match(after, /table inet hyperfleet/);
    assert.equal((after.match(/^table /gm) ?? []).length, 1, "only our table exists");
  } finally {
    await run("ip", ["netns", "del", ns]);
    rmSync(dir, { recursive: true, force: true });
  }
  const { stdout } = await run("ip", ["netns", "list"]);
  assert.doesNotMatch(stdout, new RegExp(ns));
});
