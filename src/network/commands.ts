/**
 * The `ip`, `nft` and `sysctl` commands that build and tear down VM networks (docs/adr/0008,
 * "Bring-up order"). Pure: what the host looks like now goes in, the commands that make it right
 * come out, so convergence from every crash point is unit-tested without touching a host.
 * fabric.ts observes the host, asks these builders, and runs what they return.
 */
import { GUEST, HOST_VETH_PREFIX, NS_VETH, machineOfNetns, type SlotPlan } from "./address-plan.js";

export interface Command {
  argv: readonly string[];
  /** Written to stdin (`nft -f -`, `ip -batch -`). */
  input?: string;
  /** A failure whose stderr matches means "already so" (deleting what is gone): success. */
  alreadyDone?: RegExp;
}

/** Where host-side commands run: the current namespace (null, the daemon) or a named one (tests). */
export type HostNetns = string | null;

const GONE_LINK = /Cannot find device/;
const GONE_NETNS = /No such file or directory/;

export function hostIp(host: HostNetns, args: readonly string[]): string[] {
  return host === null ? ["ip", ...args] : ["ip", "-n", host, ...args];
}

export function inNetns(ns: string, argv: readonly string[]): string[] {
  return ["ip", "netns", "exec", ns, ...argv];
}

/** Programs without a namespace option (sysctl, nft) enter the host namespace through `ip netns exec`. */
export function onHost(host: HostNetns, argv: readonly string[]): string[] {
  return host === null ? [...argv] : inNetns(host, argv);
}

export function sysctl(host: HostNetns, settings: readonly string[]): Command {
  return { argv: onHost(host, ["sysctl", "-qw", ...settings]) };
}

/** One `nft -f -` transaction: the rulesets of nft.ts replace our table as a whole. */
export function applyRuleset(host: HostNetns, ruleset: string): Command {
  return { argv: onHost(host, ["nft", "-f", "-"]), input: ruleset };
}

/** Removes a host table as a whole (the last library machine gone); absent already is success. */
export function deleteTable(host: HostNetns, table: string): Command {
  return { argv: onHost(host, ["nft", "delete", "table", "inet", table]), alreadyDone: /No such file or directory/ };
}

export function deleteHostLink(host: HostNetns, name: string): Command {
  return { argv: hostIp(host, ["link", "del", name]), alreadyDone: GONE_LINK };
}

export function deleteNetns(ns: string): Command {
  return { argv: ["ip", "netns", "del", ns], alreadyDone: GONE_NETNS };
}

/** One link as `ip -j link show` reports it. */
export interface LinkFact {
  name: string;
  index: number;
  /** A veth's peer: its ifindex in the peer's namespace, and that namespace's id as seen from here. */
  peerIndex?: number;
  peerNsid?: number;
}

export type NetnsState = "absent" | "ok" | "broken";

/** What attach found on the host before acting. */
export interface AttachFacts {
  /** "broken": the `/run/netns` file exists but is no namespace (a crash inside `ip netns add`). */
  netns: NetnsState;
  /** Links inside the VM's namespace (empty unless `netns` is "ok"). */
  nsLinks: readonly LinkFact[];
  /** The host end `hfv<slot>`, if some link has that name. */
  hostVeth: LinkFact | undefined;
}

/** hfp0 and hfv<slot> are each other's peer: the pair can be kept as it is. */
function paired(nsVeth: LinkFact | undefined, hostVeth: LinkFact | undefined): boolean {
  return nsVeth !== undefined && hostVeth !== undefined && nsVeth.peerIndex === hostVeth.index && hostVeth.peerIndex === nsVeth.index;
}

/**
 * Brings a VM's namespace from whatever state `facts` describe to fully up. Everything after the
 * veth pair is idempotent by itself (`replace`, `up`, sysctl writes, whole-table nft), so it always
 * runs; only creations depend on the facts. A veth that is not exactly our pair is recreated:
 * attach runs before the VMM boots, so nothing uses it yet.
 */
export function attachCommands(host: HostNetns, ns: string, sp: SlotPlan, facts: AttachFacts, nsRuleset: string): Command[] {
  const out: Command[] = [];
  let links = facts.nsLinks;
  if (facts.netns === "broken") out.push(deleteNetns(ns));
  if (facts.netns !== "ok") {
    out.push({ argv: ["ip", "netns", "add", ns] });
    links = [];
  }
  const nsVeth = links.find((l) => l.name === NS_VETH);
  if (!paired(nsVeth, facts.hostVeth)) {
    if (nsVeth) out.push({ argv: ["ip", "-n", ns, "link", "del", NS_VETH], alreadyDone: GONE_LINK });
    // After deleting hfp0 a lingering hfv<slot> that was its peer is gone too; hence alreadyDone.
    if (facts.hostVeth) out.push(deleteHostLink(host, sp.hostVeth));
    // Created with its peer already in the namespace: no crash leaves hfp0 in the host namespace.
    out.push({ argv: hostIp(host, ["link", "add", sp.hostVeth, "type", "veth", "peer", "name", NS_VETH, "netns", ns]) });
  }
  out.push({ argv: hostIp(host, ["-batch", "-"]), input: lines([`addr replace ${sp.hostIp}/31 dev ${sp.hostVeth}`, `link set ${sp.hostVeth} up`]) });
  // DNAT of 127.0.0.1-bound exposed ports leaves through hfv<i> with a loopback source (ADR: only here).
  out.push(sysctl(host, [`net.ipv4.conf.${sp.hostVeth}.route_localnet=1`]));
  const inside = ["link set lo up"];
  if (!links.some((l) => l.name === GUEST.tap)) inside.push(`tuntap add dev ${GUEST.tap} mode tap`);
  inside.push(
    `link set ${GUEST.tap} address ${GUEST.tapMac}`,
    `addr replace ${GUEST.gateway}/${GUEST.prefix} dev ${GUEST.tap}`,
    `link set ${GUEST.tap} up`,
    `addr replace ${sp.vmIp}/31 dev ${NS_VETH}`,
    `link set ${NS_VETH} up`,
    `route replace default via ${sp.hostIp} dev ${NS_VETH}`,
  );
  out.push({ argv: ["ip", "-n", ns, "-batch", "-"], input: lines(inside) });
  out.push({ argv: inNetns(ns, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]) });
  out.push({ argv: inNetns(ns, ["nft", "-f", "-"]), input: nsRuleset });
  return out;
}

/**
 * Removes a VM's namespace. The host end is deleted first and explicitly: the kernel destroys a
 * deleted namespace (and the veth with it) asynchronously, and not at all while a process (a VMM
 * that has not exited yet) still lives in it.
 */
export function detachCommands(host: HostNetns, ns: string, netns: NetnsState, hostPeer: string | undefined): Command[] {
  const out: Command[] = [];
  if (hostPeer !== undefined) out.push(deleteHostLink(host, hostPeer));
  if (netns !== "absent") out.push(deleteNetns(ns));
  return out;
}

/** This instance's namespaces whose machine is not kept; other instances' and foreign names stay. */
export function strayNamespaces(tag: string, keep: ReadonlySet<string>, names: readonly string[]): string[] {
  return names.filter((n) => {
    const id = machineOfNetns(tag, n);
    return id !== undefined && !keep.has(id);
  });
}

/**
 * Host veths `hfv<n>` nobody kept owns: the peer is in one of our namespaces whose machine is not
 * kept, or in no named namespace at all (deleted while a process held it, or never moved). A peer
 * in another instance's or a foreign named namespace is not ours to judge.
 */
export function strayHostVeths(
  tag: string,
  keep: ReadonlySet<string>,
  veths: readonly LinkFact[],
  nsNames: ReadonlyMap<number, string>,
  vethPrefix: string = HOST_VETH_PREFIX,
): string[] {
  // Only this profile's veths: `hfv<n>` is never the library's `hfl<n>`, nor the other way round.
  const ours = new RegExp(`^${vethPrefix}\\d+$`);
  return veths
    .filter((l) => {
      if (!ours.test(l.name)) return false;
      const peerNs = l.peerNsid === undefined ? undefined : nsNames.get(l.peerNsid);
      if (peerNs === undefined) return true;
      const id = machineOfNetns(tag, peerNs);
      return id !== undefined && !keep.has(id);
    })
    .map((l) => l.name);
}

function lines(cmds: readonly string[]): string {
  return `${cmds.join("\n")}\n`;
}

/** `ip -j link show` output; a namespace without links prints nothing. */
export function parseLinks(json: string): LinkFact[] {
  const rows = parseArray(json);
  return rows.map((r) => {
    const fact: LinkFact = { name: String(r.ifname), index: Number(r.ifindex) };
    if (typeof r.link_index === "number") fact.peerIndex = r.link_index;
    if (typeof r.link_netnsid === "number") fact.peerNsid = r.link_netnsid;
    return fact;
  });
}

/** `ip -j netns list-id`: nsid -> name, for the named namespaces that have an id here. */
export function parseNsIds(json: string): Map<number, string> {
  const m = new Map<number, string>();
  for (const r of parseArray(json)) if (typeof r.nsid === "number" && typeof r.name === "string") m.set(r.nsid, r.name);
  return m;
}

/** `ip -j netns list`: the names in `/run/netns`. */
export function parseNetnsNames(json: string): string[] {
  return parseArray(json).flatMap((r) => (typeof r.name === "string" ? [r.name] : []));
}

function parseArray(json: string): Record<string, unknown>[] {
  if (json.trim() === "") return [];
  const v: unknown = JSON.parse(json);
  return Array.isArray(v) ? v.filter((x): x is Record<string, unknown> => typeof x === "object" && x !== null) : [];
}
