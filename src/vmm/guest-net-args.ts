/**
 * Pure builder of the guest network's kernel parameters (docs/agent-protocol.md, "Guest network").
 * The guest kernel has no CONFIG_IP_PNP, so `ip=` does nothing; the agent (PID 1) reads these and
 * configures the NIC over rtnetlink (guest/common/netcfg.c). The checks mirror the guest's parser,
 * which rejects the whole set on any bad value: better to fail here, where the error is visible,
 * than to boot a VM without a network.
 */
import { HyperfleetError } from "../core/errors.js";
import { parseIpv4 } from "../core/ipv4.js";

export interface GuestNetArgs {
  /** IPv4 address with prefix length, e.g. "10.213.0.2/24". */
  address: string;
  /** Default route; must be another address of the same subnet. */
  gateway?: string;
  /** 68-65535; absent: the NIC driver's default (1500). */
  mtu?: number;
  /** Nameservers for /etc/resolv.conf, at most three (a libc reads no more). */
  dns?: string[];
  /** Configure the NIC with this MAC (the NicSpec's); absent: the first non-loopback NIC. */
  mac?: string;
}

export const GUEST_MAX_DNS = 3;

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

function bad(field: string, message: string): never {
  throw new HyperfleetError("INVALID_ARGUMENT", `guest network ${field}: ${message}`, { details: { field } });
}

function ipv4(field: string, s: string): number {
  const n = parseIpv4(s);
  if (n === undefined) bad(field, `${JSON.stringify(s)} is not an IPv4 address`);
  return n;
}

/** The kernel parameters for n, in a fixed order. */
export function guestNetArgs(n: GuestNetArgs): string[] {
  const [addr, prefixText, ...rest] = n.address.split("/");
  const prefix = Number(prefixText);
  if (rest.length > 0 || prefixText === undefined || !/^[1-9]\d?$/.test(prefixText) || prefix > 32) bad("address", `${JSON.stringify(n.address)}: want address/prefix (1-32)`);
  const a = ipv4("address", addr ?? "");
  const size = 2 ** (32 - prefix);
  const host = a % size;
  const first = Math.floor(a / 2 ** 24);
  if (first === 0 || first === 127 || first >= 224 || (prefix <= 30 && (host === 0 || host === size - 1))) bad("address", `${n.address} is not a usable host address`);
  const args = [`hf.ip=${addr}/${prefix}`];
  if (n.gateway !== undefined) {
    const g = ipv4("gateway", n.gateway);
    if (g === a || Math.floor(g / size) !== Math.floor(a / size)) bad("gateway", `${n.gateway} is not another address of ${n.address}`);
    args.push(`hf.gw=${n.gateway}`);
  }
  if (n.mtu !== undefined) {
    if (!Number.isInteger(n.mtu) || n.mtu < 68 || n.mtu > 65535) bad("mtu", `${n.mtu}: want 68-65535`);
    args.push(`hf.mtu=${n.mtu}`);
  }
  if (n.dns !== undefined && n.dns.length > 0) {
    if (n.dns.length > GUEST_MAX_DNS) bad("dns", `${n.dns.length} servers: at most ${GUEST_MAX_DNS}`);
    for (const d of n.dns) ipv4("dns", d);
    args.push(`hf.dns=${n.dns.join(",")}`);
  }
  if (n.mac !== undefined) {
    if (!MAC.test(n.mac)) bad("mac", `${JSON.stringify(n.mac)}: want xx:xx:xx:xx:xx:xx`);
    if (parseInt(n.mac.slice(0, 2), 16) & 1) bad("mac", `${n.mac} is a multicast address`);
    args.push(`hf.mac=${n.mac.toLowerCase()}`);
  }
  return args;
}
