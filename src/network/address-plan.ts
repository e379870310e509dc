/**
 * Where a VM's network lives (docs/adr/0008-vm-network-topology.md): the subnet is cut into /31
 * slots; slot i holds the host end of the VM's veth (B+2i) and the VM's address (B+2i+1). Every
 * guest sees the same link-local address behind its own namespace. Pure: names and addresses only.
 */
import { createHash } from "node:crypto";
import { HyperfleetError } from "../core/errors.js";
import { cidrSize, formatIpv4, parseCidr, subnetProblem, type Cidr } from "../core/ipv4.js";

/** What every guest sees, whatever its slot (so a snapshot clone's address stays valid). */
export const GUEST = {
  ip: "169.254.0.21",
  gateway: "169.254.0.22",
  prefix: 30,
  /** The guest's NIC as the VMM names the TAP inside the VM's namespace. */
  tap: "tap0",
  /**
   * The gateway's MAC, the same in every namespace: a snapshot clone wakes up with its source's ARP
   * cache, which must stay right behind the clone's own TAP (a random MAC would black-hole its
   * traffic until the entry goes stale).
   */
  tapMac: "02:68:66:00:00:01",
  mtu: 1500,
} as const;

/** Inside the namespace, the veth end facing the host. */
export const NS_VETH = "hfp0";
/** Host-side veth names are `hfv<slot>`; nft matches them all with this wildcard. */
export const HOST_VETH_PREFIX = "hfv";

/**
 * Which host-side names one owner of VM networks uses in a namespace it shares with others: its nft
 * table (`inet <table>`) and the prefix of its veths (`<vethPrefix><slot>`, matched by
 * `"<vethPrefix>*"`). The daemon and the library (docs/adr/0008, "Library machines") each have one,
 * so neither's rules or sweeps ever match the other's interfaces.
 */
export interface FabricProfile {
  table: string;
  vethPrefix: string;
}

export const DAEMON_PROFILE: FabricProfile = { table: "hyperfleet", vethPrefix: HOST_VETH_PREFIX };
export const LIBRARY_PROFILE: FabricProfile = { table: "hyperfleet_lib", vethPrefix: "hfl" };

/**
 * Two profiles can share a namespace when neither's veth wildcard matches the other's veths (no
 * prefix of the other, as "hf" would be of "hfv") and their tables differ.
 */
export function profilesDisjoint(a: FabricProfile, b: FabricProfile): boolean {
  return a.table !== b.table && !a.vethPrefix.startsWith(b.vethPrefix) && !b.vethPrefix.startsWith(a.vethPrefix);
}

/** A profile nft and IFNAMSIZ accept: a name of the safe alphabet, a prefix leaving room for the slot. */
export function checkProfile(p: FabricProfile): FabricProfile {
  if (!/^[a-z][a-z0-9_]{0,31}$/.test(p.table) || !/^[a-z]{2,5}$/.test(p.vethPrefix)) {
    throw new HyperfleetError("INTERNAL", `network profile { table: '${p.table}', vethPrefix: '${p.vethPrefix}' } is not [a-z][a-z0-9_]{0,31} / [a-z]{2,5}`);
  }
  return p;
}
export const NETNS_PREFIX = "hf-";

/**
 * A daemon's instance tag, derived from something only it owns (its data dir): `/run/netns` is one
 * directory for the whole host, so two daemons (two test daemons) must never take each other's
 * namespaces for strays.
 */
export function instanceTag(seed: string): string {
  return createHash("sha256").update(seed).digest("hex").slice(0, 8);
}

const TAG = /^[a-z0-9]{1,16}$/;
// Machine ids are `vm_<ULID>`; this is looser, but keeps `/` and spaces out of a file name.
const ID = /^[A-Za-z0-9_]{1,64}$/;

/** `/run/netns` name of a machine's namespace: `hf-<tag>-<machine id>`, so a sweep knows whose it is. */
export function netnsName(tag: string, machineId: string): string {
  if (!TAG.test(tag)) throw new HyperfleetError("INTERNAL", `network instance tag '${tag}' is not [a-z0-9]{1,16}`);
  if (!ID.test(machineId)) throw new HyperfleetError("INTERNAL", `machine id '${machineId}' cannot name a namespace`);
  return `${NETNS_PREFIX}${tag}-${machineId}`;
}

/** The machine id of one of this instance's namespaces, or undefined for any other name. */
export function machineOfNetns(tag: string, name: string): string | undefined {
  const prefix = `${NETNS_PREFIX}${tag}-`;
  if (!name.startsWith(prefix)) return undefined;
  const id = name.slice(prefix.length);
  return ID.test(id) ? id : undefined;
}

export interface SlotPlan {
  slot: number;
  /** Root-namespace end of the veth; also the VM's `network.gateway`. */
  hostVeth: string;
  hostIp: string;
  /** The VM's address: what the host and private-network peers reach it by (`network.ip`). */
  vmIp: string;
}

export interface AddressPlan {
  readonly subnet: Cidr;
  /** Lowest and highest usable slot: the first holds the network address, the last the broadcast. */
  readonly firstSlot: number;
  readonly lastSlot: number;
}

/** Plans `HYPERFLEET_SUBNET`; throws CONFIG_INVALID for a subnet config would have refused. */
export function addressPlan(subnet: string): AddressPlan {
  const problem = subnetProblem(subnet);
  if (problem !== undefined) throw new HyperfleetError("CONFIG_INVALID", `HYPERFLEET_SUBNET ${problem}`);
  const cidr = parseCidr(subnet)!;
  return { subnet: cidr, firstSlot: 1, lastSlot: cidrSize(cidr) / 2 - 2 };
}

export function slotCount(plan: AddressPlan): number {
  return plan.lastSlot - plan.firstSlot + 1;
}

export function slotPlan(plan: AddressPlan, slot: number, vethPrefix: string = HOST_VETH_PREFIX): SlotPlan {
  if (!Number.isInteger(slot) || slot < plan.firstSlot || slot > plan.lastSlot) {
    throw new HyperfleetError("INTERNAL", `network slot ${slot} is outside ${plan.firstSlot}..${plan.lastSlot}`);
  }
  const host = plan.subnet.base + 2 * slot;
  return {
    slot,
    hostVeth: `${vethPrefix}${slot}`,
    hostIp: formatIpv4(host),
    vmIp: formatIpv4(host + 1),
  };
}

/** The lowest free slot, or undefined when every slot is used. O(used) for a dense prefix. */
export function nextFreeSlot(plan: AddressPlan, used: ReadonlySet<number>): number | undefined {
  for (let s = plan.firstSlot; s <= plan.lastSlot; s++) if (!used.has(s)) return s;
  return undefined;
}

/** The slot whose VM address `ip` is, or undefined (host end, outside the subnet, reserved slot). */
export function slotOfVmIp(plan: AddressPlan, ip: number): number | undefined {
  const off = ip - plan.subnet.base;
  if (off < 0 || off >= cidrSize(plan.subnet) || off % 2 !== 1) return undefined;
  const slot = (off - 1) / 2;
  return slot >= plan.firstSlot && slot <= plan.lastSlot ? slot : undefined;
}
