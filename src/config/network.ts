/**
 * VM networking settings (docs/adr/0008-vm-network-topology.md). Read and validated now, so a bad
 * value is refused today rather than the day networking is switched on; nothing uses them yet.
 */
import { formatIpv4, parseIpv4, subnetProblem } from "../core/ipv4.js";
import type { EnvReader } from "./env-reader.js";

export interface NetworkConfig {
  /** `HYPERFLEET_NETWORK_DEFAULT`: whether a machine that says nothing gets a network. */
  readonly defaultOn: boolean;
  /** IPv4 CIDR cut into /31 slots, one per VM. */
  readonly subnet: string;
  /** Resolvers handed to guests; empty means "the host's (non-loopback) resolvers". */
  readonly dns: readonly string[];
  /** Where exposed ports listen unless a request names `host_ip`; `0.0.0.0` is every address. */
  readonly portsBind: string;
  /** Host ports allocated to exposed ports that name none, inclusive. */
  readonly portRange: { readonly min: number; readonly max: number };
}

export const DEFAULT_SUBNET = "10.210.0.0/16";
/** Below Linux's ephemeral range (32768-60999), so allocated ports do not meet outgoing sockets. */
export const DEFAULT_PORT_RANGE = { min: 20000, max: 29999 } as const;

export function readNetwork(r: EnvReader, apiPort: number): NetworkConfig {
  const subnet = r.string("HYPERFLEET_SUBNET", DEFAULT_SUBNET);
  const problem = subnetProblem(subnet);
  if (problem !== undefined) r.problem("HYPERFLEET_SUBNET", problem);

  const dns: string[] = [];
  for (const entry of r.list("HYPERFLEET_DNS")) {
    const n = parseIpv4(entry);
    if (n === undefined) {
      r.problem("HYPERFLEET_DNS", `must be comma-separated IPv4 addresses, got '${entry}'`);
    } else if (entry.startsWith("127.") || entry === "0.0.0.0") {
      r.problem("HYPERFLEET_DNS", `${entry} is the host's own loopback, which guests cannot reach: name the upstream resolver`);
    } else {
      dns.push(formatIpv4(n));
    }
  }

  const bind = r.string("HYPERFLEET_PORTS_BIND", "127.0.0.1");
  const bindN = parseIpv4(bind);
  if (bindN === undefined) r.problem("HYPERFLEET_PORTS_BIND", `must be an IPv4 address (0.0.0.0 for every address), got '${bind}'`);

  return {
    defaultOn: r.bool("HYPERFLEET_NETWORK_DEFAULT", true),
    subnet,
    dns,
    portsBind: bindN === undefined ? "127.0.0.1" : formatIpv4(bindN),
    portRange: readPortRange(r, apiPort),
  };
}

function readPortRange(r: EnvReader, apiPort: number): { min: number; max: number } {
  const name = "HYPERFLEET_PORT_RANGE";
  const v = r.raw(name);
  if (v === undefined) return rangeWithoutApi(r, DEFAULT_PORT_RANGE, apiPort);
  const m = /^(\d{1,5})-(\d{1,5})$/.exec(v);
  const min = Number(m?.[1]);
  const max = Number(m?.[2]);
  if (!m || min < 1 || max > 65535 || min > max) {
    r.problem(name, `must be 'low-high' with 1 <= low <= high <= 65535, got '${v}'`);
    return { ...DEFAULT_PORT_RANGE };
  }
  return rangeWithoutApi(r, { min, max }, apiPort);
}

/** An exposed port DNATed onto the API's port would take its traffic: the range must avoid it. */
function rangeWithoutApi(r: EnvReader, range: { min: number; max: number }, apiPort: number) {
  if (apiPort >= range.min && apiPort <= range.max) {
    r.problem("HYPERFLEET_PORT_RANGE", `${range.min}-${range.max} contains the API's PORT ${apiPort}`);
  }
  return { ...range };
}
