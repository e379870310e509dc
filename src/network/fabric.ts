/**
 * The NetworkFabric port on Linux (docs/adr/0008): observes the host with `ip -j`, asks the pure
 * builders of commands.ts what to run, and runs it. Nothing touches the host before the first
 * init() or attach(), so a daemon that never starts a networked VM changes nothing.
 */
import { HyperfleetError } from "../core/errors.js";
import type { AttachedNetwork, NetworkFabric, NetworkSweep, VmNetworkSpec } from "../core/ports/network.js";
import { formatCidr } from "../core/ipv4.js";
import { DAEMON_PROFILE, GUEST, NS_VETH, checkProfile, machineOfNetns, netnsName, slotPlan, type AddressPlan, type FabricProfile, type SlotPlan } from "./address-plan.js";
import {
  applyRuleset,
  attachCommands,
  deleteHostLink,
  deleteTable,
  detachCommands,
  hostIp,
  parseLinks,
  parseNetnsNames,
  parseNsIds,
  strayHostVeths,
  strayNamespaces,
  sysctl,
  type AttachFacts,
  type HostNetns,
  type LinkFact,
  type NetnsState,
} from "./commands.js";
import { buildHostRuleset, buildNamespaceRuleset, type VmRules } from "./nft.js";
import { DEFAULT_LIMITS, commandFailed, probe, run, runAll, type RunLimits } from "./run.js";

export interface LinuxNetworkFabricOptions {
  /** HYPERFLEET_SUBNET's plan: a machine's slot must give the addresses it was created with. */
  plan: AddressPlan;
  /** `[a-z0-9]{1,16}`, e.g. instanceTag(data dir): namespaces are `hf-<tag>-<machine id>`. */
  tag: string;
  /**
   * The namespace that plays the host: null for the daemon (the one it runs in); tests name one
   * they created, so the root namespace is never touched.
   */
  hostNetns: HostNetns;
  /** Host table and veth names; default the daemon's (`inet hyperfleet`, `hfv<slot>`). */
  profile?: FabricProfile;
  limits?: Partial<RunLimits>;
}

const HOST_RULES = "\0host-rules";

export class LinuxNetworkFabric implements NetworkFabric {
  private readonly plan: AddressPlan;
  private readonly tag: string;
  private readonly host: HostNetns;
  private readonly profile: FabricProfile;
  private readonly limits: RunLimits;
  private initOnce: Promise<void> | undefined;
  /** The last state applyHostRules was asked for; init applies it too, never an older one. */
  private wanted: readonly VmNetworkSpec[] = [];
  /** Per-machine (and host-table) queues: one operation at a time on the same names. */
  private readonly queues = new Map<string, Promise<unknown>>();

  constructor(opts: LinuxNetworkFabricOptions) {
    this.plan = opts.plan;
    this.tag = opts.tag;
    this.host = opts.hostNetns;
    this.profile = checkProfile(opts.profile ?? DAEMON_PROFILE);
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    netnsName(this.tag, "vm_check"); // refuses a bad tag now, not at the first attach
  }

  /** `/run/netns` name of a machine's namespace under this instance. */
  netnsOf(machineId: string): string {
    return netnsName(this.tag, machineId);
  }

  /** Once per instance (retried after a failure); attach runs it too, so forwarding is never missing. */
  init(): Promise<void> {
    this.initOnce ??= this.prepare().catch((e: unknown) => {
      this.initOnce = undefined;
      throw e;
    });
    return this.initOnce;
  }

  private async prepare(): Promise<void> {
    // The VMM launcher enters the namespace with nsenter: say it is missing before the first boot.
    await run({ argv: ["nsenter", "--version"] }, this.limits);
    await run(sysctl(this.host, ["net.ipv4.ip_forward=1"]), this.limits);
    await this.applyHostRules(this.wanted);
  }

  async attach(vm: VmNetworkSpec): Promise<AttachedNetwork> {
    const sp = this.slotOf(vm);
    const ns = this.netnsOf(vm.machineId);
    await this.init();
    await this.serial(vm.machineId, async () => {
      const facts = await this.attachFacts(ns, sp);
      await runAll(attachCommands(this.host, ns, sp, facts, buildNamespaceRuleset(sp.vmIp)), this.limits);
    });
    return { netnsPath: `/run/netns/${ns}`, nic: { tap: GUEST.tap, mac: vm.network.mac } };
  }

  async detach(machineId: string): Promise<void> {
    const ns = this.netnsOf(machineId);
    await this.serial(machineId, () => this.teardown(ns));
  }

  applyHostRules(active: readonly VmNetworkSpec[]): Promise<void> {
    let text: string;
    try {
      text = buildHostRuleset({ subnet: formatCidr(this.plan.subnet), vms: active.map((vm) => this.rulesOf(vm)) }, this.profile);
    } catch (e) {
      return Promise.reject(e);
    }
    this.wanted = active;
    // Queued in call order, so the last call's table is the one left applied.
    return this.serial(HOST_RULES, () => run(applyRuleset(this.host, text), this.limits).then(() => undefined));
  }

  /** Removes the host table (no machine of this profile is left); queued like applyHostRules. */
  dropHostRules(): Promise<void> {
    this.wanted = [];
    return this.serial(HOST_RULES, () => run(deleteTable(this.host, this.profile.table), this.limits).then(() => undefined));
  }

  /**
   * Deletes this instance's namespaces whose machine is not in `keep`, and host veths whose peer is
   * in one of those or in no named namespace. Run it when no attach of a machine outside `keep` is
   * in flight (daemon startup): such a machine's namespace would be a stray.
   */
  async sweep(keep: ReadonlySet<string>): Promise<NetworkSweep> {
    const names = parseNetnsNames(await run({ argv: ["ip", "-j", "netns", "list"] }, this.limits));
    const namespaces = strayNamespaces(this.tag, keep, names);
    const links: string[] = [];
    for (const ns of namespaces) {
      const peer = await this.serial(machineOfNetns(this.tag, ns)!, () => this.teardown(ns));
      if (peer !== undefined) links.push(peer);
    }
    const veths = parseLinks(await run({ argv: hostIp(this.host, ["-j", "link", "show", "type", "veth"]) }, this.limits));
    const nsIds = parseNsIds(await run({ argv: hostIp(this.host, ["-j", "netns", "list-id"]) }, this.limits));
    for (const name of strayHostVeths(this.tag, keep, veths, nsIds, this.profile.vethPrefix)) {
      await run(deleteHostLink(this.host, name), this.limits);
      links.push(name);
    }
    return { namespaces, links };
  }

  /** Deletes a namespace and the host end of its veth; resolves with that host link's name. */
  private async teardown(ns: string): Promise<string | undefined> {
    const { state, links } = await this.namespaceLinks(ns);
    const nsVeth = links.find((l) => l.name === NS_VETH);
    let peer: string | undefined;
    if (nsVeth?.peerIndex !== undefined) {
      const hostVeths = parseLinks(await run({ argv: hostIp(this.host, ["-j", "link", "show", "type", "veth"]) }, this.limits));
      peer = hostVeths.find((l) => l.index === nsVeth.peerIndex && l.peerIndex === nsVeth.index)?.name;
    }
    await runAll(detachCommands(this.host, ns, state, peer), this.limits);
    return peer;
  }

  private async attachFacts(ns: string, sp: SlotPlan): Promise<AttachFacts> {
    const { state, links } = await this.namespaceLinks(ns);
    const show = { argv: hostIp(this.host, ["-j", "link", "show", "dev", sp.hostVeth]) };
    const host = await probe(show, this.limits);
    if (host.code !== 0 && !/does not exist/.test(host.stderr)) throw commandFailed(show, host);
    return { netns: state, nsLinks: links, hostVeth: host.code === 0 ? parseLinks(host.stdout)[0] : undefined };
  }

  private async namespaceLinks(ns: string): Promise<{ state: NetnsState; links: LinkFact[] }> {
    const cmd = { argv: ["ip", "-n", ns, "-j", "link", "show"] };
    const o = await probe(cmd, this.limits);
    if (o.code === 0) return { state: "ok", links: parseLinks(o.stdout) };
    if (/No such file or directory/.test(o.stderr)) return { state: "absent", links: [] };
    // The file exists but is not a namespace: a crash between `ip netns add`'s create and mount.
    if (/Invalid argument/.test(o.stderr)) return { state: "broken", links: [] };
    throw commandFailed(cmd, o);
  }

  private slotOf(vm: VmNetworkSpec): SlotPlan {
    const sp = slotPlan(this.plan, vm.network.slot, this.profile.vethPrefix);
    if (sp.vmIp !== vm.network.ip || sp.hostIp !== vm.network.gateway) {
      throw new HyperfleetError(
        "CONFIG_INVALID",
        `machine ${vm.machineId} was given ${vm.network.ip} (gateway ${vm.network.gateway}) but slot ${sp.slot} of HYPERFLEET_SUBNET ` +
          `${formatCidr(this.plan.subnet)} is ${sp.vmIp}: the subnet cannot change while machines hold addresses`,
      );
    }
    return sp;
  }

  private rulesOf(vm: VmNetworkSpec): VmRules {
    const sp = this.slotOf(vm);
    const n = vm.network;
    return {
      slot: sp.slot,
      hostVeth: sp.hostVeth,
      vmIp: sp.vmIp,
      internet: n.internet,
      allowOut: n.allowOut,
      denyOut: n.denyOut,
      privateNetwork: n.privateNetwork,
      ports: vm.exposedPorts,
    };
  }

  private serial<T>(key: string, op: () => Promise<T>): Promise<T> {
    const result = (this.queues.get(key) ?? Promise.resolve()).then(op);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.queues.set(key, tail);
    void tail.then(() => {
      if (this.queues.get(key) === tail) this.queues.delete(key);
    });
    return result;
  }
}
