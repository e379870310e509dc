/**
 * IPv4 addresses and CIDR blocks as numbers: parsing, formatting, containment. Pure, so config can
 * validate `HYPERFLEET_SUBNET` and `src/network` can plan addresses from one definition.
 */

export interface Cidr {
  /** Network address as an unsigned 32-bit number (host bits zero). */
  readonly base: number;
  readonly prefix: number;
}

const OCTET = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/** Dotted quad -> unsigned 32-bit number; undefined unless exactly four decimal octets. */
export function parseIpv4(text: string): number | undefined {
  const parts = text.split(".");
  if (parts.length !== 4 || !parts.every((p) => OCTET.test(p))) return undefined;
  return parts.reduce((n, p) => n * 256 + Number(p), 0);
}

export function formatIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

export function cidrSize(c: Cidr): number {
  return 2 ** (32 - c.prefix);
}

/** `a.b.c.d/p`. `strict` refuses set host bits (`10.0.0.1/24`), which usually means a typo. */
export function parseCidr(text: string, strict = true): Cidr | undefined {
  const m = /^([^/]+)\/(\d{1,2})$/.exec(text.trim());
  const addr = m ? parseIpv4(m[1]!) : parseIpv4(text.trim());
  const prefix = m ? Number(m[2]) : 32;
  if (addr === undefined || prefix > 32) return undefined;
  const size = 2 ** (32 - prefix);
  const base = addr - (addr % size);
  if (strict && base !== addr) return undefined;
  return { base, prefix };
}

export function formatCidr(c: Cidr): string {
  return `${formatIpv4(c.base)}/${c.prefix}`;
}

export function cidrContains(c: Cidr, addr: number): boolean {
  return addr >= c.base && addr < c.base + cidrSize(c);
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return cidrContains(a, b.base) || cidrContains(b, a.base);
}

/** Ranges no VM subnet may overlap: "this network", loopback, link-local (the guest side), multicast and up. */
export const RESERVED_IPV4: readonly Cidr[] = ["0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/3"].map(
  (t) => parseCidr(t)!,
);

export const SUBNET_MIN_PREFIX = 16;
/** A /29 holds four /31 slots, two of them usable. */
export const SUBNET_MAX_PREFIX = 29;

/** Why `text` cannot be the VMs' subnet, or undefined if it can. */
export function subnetProblem(text: string): string | undefined {
  const loose = parseCidr(text, false);
  if (loose === undefined || !text.includes("/")) return `must be an IPv4 CIDR like 10.210.0.0/16, got '${text}'`;
  const c = parseCidr(text);
  if (c === undefined) return `has host bits set: did you mean ${formatCidr(loose)}?`;
  if (c.prefix < SUBNET_MIN_PREFIX || c.prefix > SUBNET_MAX_PREFIX) {
    return `must have a prefix from /${SUBNET_MIN_PREFIX} to /${SUBNET_MAX_PREFIX}, got /${c.prefix}`;
  }
  const clash = RESERVED_IPV4.find((r) => cidrsOverlap(r, c));
  if (clash) return `must not overlap ${formatCidr(clash)}, got ${formatCidr(c)}`;
  return undefined;
}
