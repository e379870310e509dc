/**
 * The test network, as data: the namespaces a network test file owns and the `ip` commands that
 * build them. Pure (no process is spawned here), so the plan can be read and checked on its own.
 *
 *   hft-<run>-host: the "host" the daemon under test runs in; lo up; uplink0 = 203.0.113.2/24,
 *                   default route via 203.0.113.1.
 *   hft-<run>-out:  the "outside world"; world0 = 203.0.113.1/24 and 203.0.113.99/24; runs the
 *                   test's DNS and HTTP servers (outside-servers.ts).
 *
 * 203.0.113.0/24 is TEST-NET-3 (RFC 5737): documentation only, never routed anywhere, and here it
 * exists only inside these two namespaces. No command below names the root namespace.
 */

/** Addresses of the simulated world. */
export const WORLD = {
  /** The outside host: DNS server and HTTP server, and the host namespace's default gateway. */
  outside: "203.0.113.1",
  /** A second outside address, for deny_out tests: serves HTTP too. */
  denied: "203.0.113.99",
  /** The host namespace's own address on the uplink (where the daemon's host "is"). */
  host: "203.0.113.2",
  prefix: 24,
  /** Interface names: neither starts with "hfv", so the daemon's rules treat them as the uplink. */
  hostIf: "uplink0",
  outIf: "world0",
} as const;

/** Names the DNS server answers (A records); everything else is NXDOMAIN. */
export const DNS_NAMES: Readonly<Record<string, string>> = {
  "outside.hyperfleet.test": WORLD.outside,
  "denied.hyperfleet.test": WORLD.denied,
};

/** The body each outside HTTP server answers with, by address. */
export const httpBody = (addr: string): string => `hello from outside ${addr}\n`;

export interface TestNetNames {
  /** `hft-<random>`: every namespace of this run starts with it. */
  run: string;
  host: string;
  out: string;
}

export function netNames(run: string): TestNetNames {
  if (!/^hft-[0-9a-f]{8}$/.test(run)) throw new Error(`bad test network run name ${run}`);
  return { run, host: `${run}-host`, out: `${run}-out` };
}

/** `ip` argument lists that build the namespaces (in order); `outside: false` builds only the host. */
export function buildPlan(n: TestNetNames, outside: boolean): string[][] {
  const plan = [
    ["netns", "add", n.host],
    ["-n", n.host, "link", "set", "lo", "up"],
  ];
  if (!outside) return plan;
  const cidr = (a: string) => `${a}/${WORLD.prefix}`;
  return [
    ...plan,
    ["netns", "add", n.out],
    ["-n", n.out, "link", "set", "lo", "up"],
    // Created inside the host namespace, its peer moved straight into the outside one.
    ["-n", n.host, "link", "add", WORLD.hostIf, "type", "veth", "peer", "name", WORLD.outIf, "netns", n.out],
    ["-n", n.host, "addr", "add", cidr(WORLD.host), "dev", WORLD.hostIf],
    ["-n", n.host, "link", "set", WORLD.hostIf, "up"],
    ["-n", n.out, "addr", "add", cidr(WORLD.outside), "dev", WORLD.outIf],
    ["-n", n.out, "addr", "add", cidr(WORLD.denied), "dev", WORLD.outIf],
    ["-n", n.out, "link", "set", WORLD.outIf, "up"],
    ["-n", n.host, "route", "add", "default", "via", WORLD.outside],
  ];
}
