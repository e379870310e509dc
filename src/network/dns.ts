/**
 * The resolvers guests use (docs/adr/0008): HYPERFLEET_DNS, else the host's. A guest reaches its
 * resolvers through NAT, so the host's loopback ones (systemd-resolved's 127.0.0.53 stub, a local
 * dnsmasq) are useless to it: behind the stub, systemd keeps the real upstreams in
 * /run/systemd/resolve/resolv.conf. The parser is pure; `guestResolvers` reads the files.
 */
import { readFileSync } from "node:fs";
import { cidrContains, formatIpv4, parseCidr, parseIpv4 } from "../core/ipv4.js";

/** glibc's MAXNS: a resolver past the third is never asked. */
export const MAX_RESOLVERS = 3;
export const SYSTEMD_STUB = "127.0.0.53";

export const RESOLV_CONF = "/etc/resolv.conf";
export const SYSTEMD_RESOLV_CONF = "/run/systemd/resolve/resolv.conf";

/** Unreachable from a guest: "this network", loopback, link-local (the guest's own side). */
const UNREACHABLE = ["0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16"].map((c) => parseCidr(c)!);

/** The IPv4 `nameserver` entries of a resolv.conf, in order (guests have no IPv6 route). */
export function parseResolvConf(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split("\n")) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    const n = m ? parseIpv4(m[1]!) : undefined;
    if (n !== undefined) out.push(formatIpv4(n));
  }
  return out;
}

export function reachableFromGuest(ip: string): boolean {
  const n = parseIpv4(ip);
  return n !== undefined && !UNREACHABLE.some((c) => cidrContains(c, n));
}

export interface ResolverChoice {
  servers: string[];
  /** Where they came from, for the log. */
  source: "HYPERFLEET_DNS" | typeof RESOLV_CONF | typeof SYSTEMD_RESOLV_CONF | "none";
}

/**
 * Pure: `configured` (HYPERFLEET_DNS) wins; else the reachable servers of resolv.conf; when that has
 * only loopback ones and names the systemd stub, those of systemd's own file. At most MAX_RESOLVERS,
 * duplicates dropped. `read` returns a file's text, or undefined when it cannot be read.
 */
export function chooseResolvers(configured: readonly string[], read: (path: string) => string | undefined): ResolverChoice {
  const pick = (list: readonly string[]) => [...new Set(list.filter(reachableFromGuest))].slice(0, MAX_RESOLVERS);
  if (configured.length > 0) return { servers: pick(configured), source: "HYPERFLEET_DNS" };
  const host = parseResolvConf(read(RESOLV_CONF) ?? "");
  const direct = pick(host);
  if (direct.length > 0) return { servers: direct, source: RESOLV_CONF };
  if (host.includes(SYSTEMD_STUB)) {
    const upstream = pick(parseResolvConf(read(SYSTEMD_RESOLV_CONF) ?? ""));
    if (upstream.length > 0) return { servers: upstream, source: SYSTEMD_RESOLV_CONF };
  }
  return { servers: [], source: "none" };
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

/** chooseResolvers over the host's files; read at each call (DHCP may rewrite them). */
export function guestResolvers(configured: readonly string[], read: (path: string) => string | undefined = readText): ResolverChoice {
  return chooseResolvers(configured, read);
}
