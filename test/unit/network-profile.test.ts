/**
 * The daemon and the library share a host namespace (docs/adr/0008, "Library machines"): each has
 * its own nft table and veth prefix, and nothing in one's rules or sweep matches the other's
 * interfaces. The rulesets are also applied side by side in a throwaway namespace.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promisify } from "node:util";
import {
  DAEMON_PROFILE,
  LIBRARY_PROFILE,
  addressPlan,
  checkProfile,
  profilesDisjoint,
  slotPlan,
  type FabricProfile,
} from "../../src/network/address-plan.js";
import { strayHostVeths, type LinkFact } from "../../src/network/commands.js";
import { buildHostRuleset, type HostRulesInput } from "../../src/network/nft.js";

const run = promisify(execFile);

function fleet(subnet: string, prefix: string): HostRulesInput {
  const plan = addressPlan(subnet);
  const vms = [1, 2].map((slot) => {
    const p = slotPlan(plan, slot, prefix);
    return { slot, hostVeth: p.hostVeth, vmIp: p.vmIp, internet: true, allowOut: [], denyOut: [], privateNetwork: slot === 1 ? "x" : null, ports: [] };
  });
  return { subnet, vms };
}

/** Every interface name or wildcard the ruleset matches on. */
function interfaceNames(text: string): string[] {
  return [...text.matchAll(/"([a-z0-9]+\*?)"/g)].map((m) => m[1]!);
}

/** nft's wildcard: a trailing `*` matches any name with that prefix. */
function nftMatches(pattern: string, name: string): boolean {
  return pattern.endsWith("*") ? name.startsWith(pattern.slice(0, -1)) : name === pattern;
}

test("the daemon and library profiles are disjoint, and a prefix of another is refused as disjoint", () => {
  assert.equal(profilesDisjoint(DAEMON_PROFILE, LIBRARY_PROFILE), true);
  assert.equal(profilesDisjoint(LIBRARY_PROFILE, DAEMON_PROFILE), true);
  assert.equal(profilesDisjoint(DAEMON_PROFILE, { table: "other", vethPrefix: "hf" }), false);
  assert.equal(profilesDisjoint(DAEMON_PROFILE, { table: "hyperfleet", vethPrefix: "abc" }), false);
  assert.throws(() => checkProfile({ table: "x; flush ruleset", vethPrefix: "hfl" }));
  assert.throws(() => checkProfile({ table: "ok", vethPrefix: "hf*" }));
  assert.throws(() => buildHostRuleset(fleet("10.211.0.0/16", "hfl"), { table: "t", vethPrefix: "HFL" }));
});

test("no wildcard or name of one profile's ruleset matches the other's veths", () => {
  const daemon = buildHostRuleset(fleet("10.210.0.0/16", DAEMON_PROFILE.vethPrefix));
  const lib = buildHostRuleset(fleet("10.211.0.0/16", LIBRARY_PROFILE.vethPrefix), LIBRARY_PROFILE);
  assert.match(lib, /^table inet hyperfleet_lib \{$/m);
  assert.match(lib, /iifname "hfl\*" drop/);
  assert.doesNotMatch(lib, /hfv|inet hyperfleet\b(?!_)/);
  assert.doesNotMatch(daemon, /hfl|hyperfleet_lib/);
  const daemonVeths = ["hfv1", "hfv2", "hfv32766"];
  const libVeths = ["hfl1", "hfl2", "hfl3", "hfl32766"];
  for (const pat of interfaceNames(daemon)) for (const v of libVeths) assert.equal(nftMatches(pat, v), false, `${pat} matches ${v}`);
  for (const pat of interfaceNames(lib)) for (const v of daemonVeths) assert.equal(nftMatches(pat, v), false, `${pat} matches ${v}`);
  // and each matches its own
  assert.ok(interfaceNames(lib).some((p) => nftMatches(p, "hfl3")));
  assert.ok(interfaceNames(daemon).some((p) => nftMatches(p, "hfv3")));
});

test("a sweep under one profile never takes the other's veths", () => {
  const veths: LinkFact[] = [
    { name: "hfv1", index: 10 },
    { name: "hfl1", index: 11 },
    { name: "hfl2x", index: 12 },
  ];
  const none = new Map<number, string>();
  assert.deepEqual(strayHostVeths("ab12", new Set(), veths, none), ["hfv1"]);
  assert.deepEqual(strayHostVeths("ab12", new Set(), veths, none, LIBRARY_PROFILE.vethPrefix), ["hfl1"]);
});

test("both tables apply side by side in a throwaway namespace; replacing one leaves the other", async (t) => {
  if (process.getuid?.() !== 0) {
    t.skip("needs root to create a network namespace");
    return;
  }
  const ns = `hft-${randomBytes(4).toString("hex")}-prof`;
  await run("ip", ["netns", "add", ns]);
  try {
    const nft = (input: string | null, ...args: string[]) =>
      new Promise<string>((resolve, reject) => {
        const c = execFile("ip", ["netns", "exec", ns, "nft", ...args], (e, out) => (e ? reject(e) : resolve(out)));
        c.stdin!.end(input ?? "");
      });
    const apply = (text: string) => nft(text, "-f", "-");
    const lib = (p: FabricProfile, vms: boolean) => buildHostRuleset(vms ? fleet("10.211.0.0/16", p.vethPrefix) : { subnet: "10.211.0.0/16", vms: [] }, p);
    await apply(buildHostRuleset(fleet("10.210.0.0/16", "hfv")));
    await apply(lib(LIBRARY_PROFILE, true));
    let listed = await nft(null, "list", "tables");
    assert.match(listed, /table inet hyperfleet\n/);
    assert.match(listed, /table inet hyperfleet_lib\n/);
    await apply(lib(LIBRARY_PROFILE, false));
    listed = await nft(null, "list", "ruleset");
    assert.match(listed, /egress_1/, "the daemon's VM chains are untouched by the library's replace");
    assert.doesNotMatch((await nft(null, "list", "table", "inet", "hyperfleet_lib")), /egress_/);
  } finally {
    await run("ip", ["netns", "del", ns]);
  }
});
