/**
 * Exposed ports at create (docs/adr/0008): the request's ports with defaults, checked against each
 * other, against the ports other machines hold and against the host (a short bind probe), and
 * host ports chosen from HYPERFLEET_PORT_RANGE for those that name none. A DNAT port has no socket
 * of its own, so these checks are the only thing keeping two owners off one port.
 * The rules are pure; the probe is handed in (src/network/port-probe.ts binds for real).
 */
import { HyperfleetError } from "../core/errors.js";
import { cidrContains, formatIpv4, parseCidr, parseIpv4, type Cidr } from "../core/ipv4.js";
import type { ExposedPort, ExposedPortRequest, PortProtocol } from "../core/machine.js";

/** One host-side socket address of an exposed port. */
export interface PortKey {
  protocol: PortProtocol;
  hostIp: string;
  hostPort: number;
}

/** "0.0.0.0": every local address (nft `fib daddr type local`). */
export const ANY_ADDRESS = "0.0.0.0";

/**
 * What a bind of the host address and port says: `free`; `in-use` (EADDRINUSE: a host process has
 * it); `not-local` (EADDRNOTAVAIL: no interface of the host has that address); `denied` (EACCES: a
 * privileged port we may not bind, so whether it is free cannot be told).
 */
export type ProbeResult = "free" | "in-use" | "not-local" | "denied";
export type PortProbe = (p: PortKey) => Promise<ProbeResult>;

export interface PortRules {
  /** HYPERFLEET_PORTS_BIND: the host_ip of a port that names none. */
  defaultHostIp: string;
  /** HYPERFLEET_PORT_RANGE, inclusive. */
  range: { min: number; max: number };
  /** HYPERFLEET_SUBNET: its addresses are the VMs' veths, never a place to expose a port. */
  subnet: string;
}

/** A request entry with defaults applied; `hostPort` undefined: to be chosen from the range. */
export interface PortWish {
  index: number;
  protocol: PortProtocol;
  hostIp: string;
  hostPort: number | undefined;
  guestPort: number;
}

/** Multicast and up, and the broadcast address: never a local unicast address to bind. */
const NOT_UNICAST: Cidr = parseCidr("224.0.0.0/3")!;

function field(i: number, name: string): string {
  return `exposed_ports[${i}].${name}`;
}

function invalid(f: string, message: string): HyperfleetError {
  return new HyperfleetError("INVALID_ARGUMENT", `${f}: ${message}`, { details: { field: f } });
}

function describe(p: PortKey): string {
  return `${p.hostIp}:${p.hostPort}/${p.protocol}`;
}

/** Two exposed ports compete for packets: same protocol and port, and an address in common. */
export function portsOverlap(a: PortKey, b: PortKey): boolean {
  return a.protocol === b.protocol && a.hostPort === b.hostPort && (a.hostIp === b.hostIp || a.hostIp === ANY_ADDRESS || b.hostIp === ANY_ADDRESS);
}

/**
 * Defaults (tcp, HYPERFLEET_PORTS_BIND) and what needs no host: a host_ip that is an address at all,
 * not multicast and not a VM's; no two entries on one host port. INVALID_ARGUMENT naming the entry.
 */
export function portWishes(reqs: readonly ExposedPortRequest[], rules: PortRules): PortWish[] {
  const subnet = parseCidr(rules.subnet);
  const wishes = reqs.map((r, index): PortWish => {
    const ipText = r.hostIp ?? rules.defaultHostIp;
    const ip = parseIpv4(ipText);
    if (ip === undefined) throw invalid(field(index, "host_ip"), `'${ipText}' is not an IPv4 address`);
    if (cidrContains(NOT_UNICAST, ip)) throw invalid(field(index, "host_ip"), `${ipText} is not a unicast address of this host`);
    if (subnet !== undefined && cidrContains(subnet, ip)) {
      throw invalid(field(index, "host_ip"), `${ipText} is inside HYPERFLEET_SUBNET ${rules.subnet} (the VMs' own addresses); use 127.0.0.1, 0.0.0.0 or another address of the host`);
    }
    return { index, protocol: r.protocol ?? "tcp", hostIp: formatIpv4(ip), hostPort: r.hostPort, guestPort: r.guestPort };
  });
  const named = wishes.filter((w): w is PortWish & { hostPort: number } => w.hostPort !== undefined);
  for (const [j, b] of named.entries()) {
    const a = named.slice(0, j).find((x) => portsOverlap(x, b));
    if (a) throw invalid(field(b.index, "host_port"), `${describe(b)} is also exposed_ports[${a.index}]: each host port can forward to one guest port`);
  }
  return wishes;
}

/** Port numbers taken for one (protocol, host_ip): held exactly there, or on either side of 0.0.0.0. */
function takenSet(held: readonly PortKey[], protocol: PortProtocol, hostIp: string): Set<number> {
  const out = new Set<number>();
  for (const h of held) if (h.protocol === protocol && (h.hostIp === hostIp || h.hostIp === ANY_ADDRESS || hostIp === ANY_ADDRESS)) out.add(h.hostPort);
  return out;
}

function unavailable(w: PortWish, p: PortKey, why: string): HyperfleetError {
  const f = field(w.index, "host_port");
  return new HyperfleetError("PORT_UNAVAILABLE", `${f}: ${describe(p)} ${why}; pick another host_port or leave it out to get a free one`, { details: { field: f } });
}

function notLocal(w: PortWish): HyperfleetError {
  return invalid(field(w.index, "host_ip"), `${w.hostIp} is not an address of this host (binding it fails with EADDRNOTAVAIL)`);
}

/**
 * The host side of every wish: named ports must be free (no other machine's port overlaps, and the
 * probe can bind them), the others get the lowest port of the range that is. `held`: the ports of
 * every other machine. Sorted by protocol, then host port (as the store returns them).
 */
export async function assignPorts(wishes: readonly PortWish[], held: readonly PortKey[], range: PortRules["range"], probe: PortProbe): Promise<ExposedPort[]> {
  const taken: PortKey[] = [...held];
  const out: ExposedPort[] = [];
  const claim = (w: PortWish, hostPort: number) => {
    const p = { protocol: w.protocol, hostIp: w.hostIp, hostPort };
    taken.push(p);
    out.push({ ...p, guestPort: w.guestPort });
  };
  // Named ports first, so a chosen one never takes a port the same request names.
  for (const w of wishes) {
    if (w.hostPort === undefined) continue;
    const p = { protocol: w.protocol, hostIp: w.hostIp, hostPort: w.hostPort };
    const other = held.find((h) => portsOverlap(h, p));
    if (other) throw unavailable(w, p, `is already exposed by another machine (${describe(other)})`);
    const r = await probe(p);
    if (r === "not-local") throw notLocal(w);
    if (r === "in-use") throw unavailable(w, p, "is in use by a process on the host");
    if (r === "denied") throw unavailable(w, p, "cannot be checked: binding it was refused (a port below 1024 needs CAP_NET_BIND_SERVICE)");
    claim(w, w.hostPort);
  }
  for (const w of wishes) {
    if (w.hostPort !== undefined) continue;
    const used = takenSet(taken, w.protocol, w.hostIp);
    let busy = 0;
    let got: number | undefined;
    for (let port = range.min; port <= range.max && got === undefined; port++) {
      if (used.has(port)) continue;
      const r = await probe({ protocol: w.protocol, hostIp: w.hostIp, hostPort: port });
      if (r === "not-local") throw notLocal(w);
      if (r === "free") got = port;
      else busy++;
    }
    if (got === undefined) {
      const f = field(w.index, "host_port");
      throw new HyperfleetError(
        "PORT_RANGE_EXHAUSTED",
        `${f}: no free ${w.protocol} port left on ${w.hostIp} in HYPERFLEET_PORT_RANGE ${range.min}-${range.max} (${used.size} exposed by machines, ${busy} in use on the host); delete machines, widen the range or name a host_port`,
        { details: { field: f } },
      );
    }
    claim(w, got);
  }
  return out.sort(comparePorts);
}

/** Protocol, then host port, then host address: the order a machine lists its ports in. */
export function comparePorts(a: PortKey, b: PortKey): number {
  return a.protocol.localeCompare(b.protocol) || a.hostPort - b.hostPort || a.hostIp.localeCompare(b.hostIp);
}

/**
 * A port is held from create (the daemon) or the first start (a library machine) until release,
 * but a host process may have started listening on it while the machine was stopped: a DNAT rule
 * over it would silently take that process's connections, so the start is refused instead.
 * PORT_UNAVAILABLE; `fix` says how to get another port.
 */
export async function checkPortsStillFree(ports: readonly ExposedPort[], probe: PortProbe, fix: string): Promise<void> {
  for (const p of ports) {
    const got = await probe({ protocol: p.protocol, hostIp: p.hostIp, hostPort: p.hostPort });
    if (got === "free") continue;
    const why = got === "in-use" ? "a process on the host now listens there" : got === "not-local" ? "the host no longer has that address" : "the host refuses to let Hyperfleet check it";
    throw new HyperfleetError("PORT_UNAVAILABLE", `exposed port ${p.hostIp}:${p.hostPort}/${p.protocol} cannot be forwarded: ${why}; free it, or ${fix}`, {
      details: { host_ip: p.hostIp, host_port: p.hostPort, protocol: p.protocol },
    });
  }
}
