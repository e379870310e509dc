/**
 * VM networks of library machines (docs/adr/0008, "Library machines"): the daemon's fabric under
 * the library profile (`inet hyperfleet_lib`, `hfl<slot>`), with the store replaced by lease files
 * in `<dataDir>/network/` that every process using that data dir shares:
 *
 *   slots/<slot>.json                 the machine's VmNetworkSpec, its owner process and its VMM
 *   ports/<proto>-<host ip>-<port>.json  which machine (and slot) holds an exposed port
 *   lock                              held while leases change and while the host table is rebuilt
 *
 * A slot lease is live while its owner process or its VMM is; a port lease while its slot lease is.
 * Dead leases are reclaimed (their namespace torn down) by the next claim. The host table is
 * rebuilt from every live slot lease under the lock, so no process drops another's VMs.
 */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { HyperfleetError } from "../core/errors.js";
import { formatCidr } from "../core/ipv4.js";
import type { ExposedPort, ExposedPortRequest, MachineNetwork, NetworkPolicy } from "../core/machine.js";
import type { AttachedNetwork, VmNetworkSpec } from "../core/ports/network.js";
import { LIBRARY_PROFILE, addressPlan, instanceTag, nextFreeSlot, slotPlan, type AddressPlan, type FabricProfile } from "./address-plan.js";
import type { HostNetns } from "./commands.js";
import { guestResolvers } from "./dns.js";
import { assignPorts, checkPortsStillFree, portWishes, type PortKey, type PortProbe } from "./exposed-ports.js";
import { LinuxNetworkFabric } from "./fabric.js";
import {
  createExclusive,
  currentOwner,
  leaseNames,
  ownerAlive,
  processStart,
  readJson,
  removeFile,
  replaceFile,
  withFileLock,
  type Owner,
} from "./lease-files.js";
import { macFromMachineId } from "./mac.js";
import { networkPolicy } from "./policy.js";
import { probePort } from "./port-probe.js";

/** Not the daemon's 10.210.0.0/16: library VMs and daemon VMs can share a host. */
export const LIBRARY_SUBNET = "10.211.0.0/16";
/** Below the kernel's ephemeral ports (32768-) and outside the daemon's 20000-29999. */
export const LIBRARY_PORT_RANGE = { min: 31000, max: 31999 } as const;
export const LIBRARY_PORTS_BIND = "127.0.0.1";

export interface LibraryNetworkOptions {
  dataDir: string;
  /** Default LIBRARY_SUBNET. Every process sharing the data dir must use the same one. */
  subnet?: string;
  /** Host ports for exposed ports that name none (inclusive). Default LIBRARY_PORT_RANGE. */
  portRange?: { min: number; max: number };
  /** host_ip of exposed ports that name none. Default 127.0.0.1. */
  portsBind?: string;
  /** Guest resolvers; default the host's (resolv.conf, behind systemd's stub its upstreams). */
  dns?: string[];
  /** Tests only: the namespace standing in for the host (see LinuxNetworkFabric). */
  hostNetns?: HostNetns;
  /** Tests only: the bind probe of exposed ports. */
  probe?: PortProbe;
  profile?: FabricProfile;
}

/** What `Machine` asks for: the policy fields, each optional. */
export type NetworkRequest = Partial<NetworkPolicy>;

interface SlotLease {
  machineId: string;
  owner: Owner;
  /** The VMM, once booted: keeps the lease live after the owner process exits (adoption). */
  vmm: Owner | null;
  spec: VmNetworkSpec;
}

interface PortLease {
  machineId: string;
  slot: number;
  port: ExposedPort;
}

export class LibraryNetwork {
  readonly dir: string;
  private readonly plan: AddressPlan;
  private readonly fabric: LinuxNetworkFabric;
  private readonly o: LibraryNetworkOptions;
  private readonly profile: FabricProfile;

  constructor(o: LibraryNetworkOptions) {
    this.o = o;
    this.dir = join(o.dataDir, "network");
    this.plan = addressPlan(o.subnet ?? LIBRARY_SUBNET);
    this.profile = o.profile ?? LIBRARY_PROFILE;
    // The tag keeps library namespaces (`hf-<tag>-<id>`) apart from the daemon's of the same dir.
    this.fabric = new LinuxNetworkFabric({ plan: this.plan, tag: instanceTag(`library:${o.dataDir}`), hostNetns: o.hostNetns ?? null, profile: this.profile });
  }

  /** `/run/netns` name of a machine's namespace. */
  netnsOf(machineId: string): string {
    return this.fabric.netnsOf(machineId);
  }

  /**
   * Reserves a slot and the exposed ports for `machineId` (reclaiming dead leases first). Nothing
   * on the host changes yet. INVALID_ARGUMENT, PORT_UNAVAILABLE, PORT_RANGE_EXHAUSTED,
   * INSUFFICIENT_CAPACITY (no slot left), MACHINE_ALREADY_EXISTS (a live process holds that id).
   */
  async claim(machineId: string, req: NetworkRequest, ports: readonly ExposedPortRequest[]): Promise<VmNetworkSpec> {
    this.netnsOf(machineId); // refuses an id that cannot name a namespace before anything is written
    const policy = networkPolicy(req);
    const wishes = portWishes(ports, { defaultHostIp: this.o.portsBind ?? LIBRARY_PORTS_BIND, range: this.range(), subnet: formatCidr(this.plan.subnet) });
    return this.locked(async () => {
      const { slots, ports: held, reclaimed } = await this.reclaim();
      // A dead machine's rules go now, whether or not this claim succeeds.
      if (reclaimed > 0) await this.applyLive();
      const other = slots.find((l) => l.machineId === machineId);
      if (other) throw new HyperfleetError("MACHINE_ALREADY_EXISTS", `machine ${machineId} already has a network held by pid ${other.owner.pid} (lease ${this.slotPath(other.spec.network.slot)})`);
      const used = new Set(slots.map((l) => l.spec.network.slot));
      const exposed = await assignPorts(wishes, held.map((p) => p.port), this.range(), this.o.probe ?? probePort);
      for (;;) {
        const slot = nextFreeSlot(this.plan, used);
        if (slot === undefined) {
          throw new HyperfleetError("INSUFFICIENT_CAPACITY", `every address of the library subnet ${formatCidr(this.plan.subnet)} is taken; shut machines down or give a larger subnet`);
        }
        const spec = this.specOf(machineId, slot, policy, exposed);
        const lease: SlotLease = { machineId, owner: await currentOwner(), vmm: null, spec };
        // Exclusive even under the lock: a process that skipped the lock still cannot share a slot.
        if (!(await createExclusive(this.slotPath(slot), lease))) {
          used.add(slot);
          continue;
        }
        const made: string[] = [];
        try {
          for (const port of exposed) {
            const path = this.portPath(port);
            if (!(await createExclusive(path, { machineId, slot, port } satisfies PortLease))) {
              throw new HyperfleetError("PORT_UNAVAILABLE", `${port.hostIp}:${port.hostPort}/${port.protocol} is already leased (${path})`);
            }
            made.push(path);
          }
        } catch (e) {
          for (const p of made) await removeFile(p);
          await removeFile(this.slotPath(slot));
          throw e;
        }
        return spec;
      }
    });
  }

  /**
   * Brings the claimed network up: the host table from every live lease (under the lock), then
   * the machine's namespace, veth and TAP. Idempotent. PORT_UNAVAILABLE when a host process took
   * one of its ports since the claim, before anything comes up.
   */
  async up(spec: VmNetworkSpec): Promise<AttachedNetwork> {
    // A restart keeps its ports: one a host process took meanwhile must not be DNATed away from it.
    await checkPortsStillFree(spec.exposedPorts, this.o.probe ?? probePort, "shut the machine down and start a new one with another host port");
    await this.locked(() => this.applyLive());
    return this.fabric.attach(spec);
  }

  /** Records the VMM that now uses the network, so the lease outlives this process while it runs. */
  async recordVmm(machineId: string, pid: number): Promise<void> {
    const start = await processStart(pid);
    if (start === null) return;
    await this.locked(async () => {
      const found = await this.leaseOf(machineId);
      if (found) await replaceFile(found.path, { ...found.lease, vmm: { pid, start } } satisfies SlotLease);
    });
  }

  /** Takes the machine's adopted network over from the process that made it; null when it has none. */
  async adopt(machineId: string): Promise<VmNetworkSpec | null> {
    return this.locked(async () => {
      const found = await this.leaseOf(machineId);
      if (!found) return null;
      await replaceFile(found.path, { ...found.lease, owner: await currentOwner() } satisfies SlotLease);
      return found.lease.spec;
    });
  }

  /**
   * Tears the machine's network down (its VMM must be gone) and gives its slot and ports back;
   * the host table loses its rules. Idempotent.
   */
  async release(machineId: string): Promise<void> {
    await this.fabric.detach(machineId);
    await this.locked(async () => {
      await this.dropLeases(machineId);
      await this.applyLive();
    });
  }

  /** The live leases' specs, for tests and tools. */
  async liveSpecs(): Promise<VmNetworkSpec[]> {
    return (await this.liveSlots()).map((l) => l.spec);
  }

  // --- internals (callers hold the lock) ---

  private async locked<T>(fn: () => Promise<T>): Promise<T> {
    await mkdir(join(this.dir, "slots"), { recursive: true, mode: 0o700 });
    await mkdir(join(this.dir, "ports"), { recursive: true, mode: 0o700 });
    return withFileLock(this.dir, fn);
  }

  private range(): { min: number; max: number } {
    return this.o.portRange ?? LIBRARY_PORT_RANGE;
  }

  private slotPath(slot: number): string {
    return join(this.dir, "slots", `${slot}.json`);
  }

  private portPath(p: PortKey): string {
    return join(this.dir, "ports", `${p.protocol}-${p.hostIp}-${p.hostPort}.json`);
  }

  private specOf(machineId: string, slot: number, policy: NetworkPolicy, exposedPorts: ExposedPort[]): VmNetworkSpec {
    const sp = slotPlan(this.plan, slot, this.profile.vethPrefix);
    const network: MachineNetwork = {
      ...policy,
      slot,
      ip: sp.vmIp,
      gateway: sp.hostIp,
      mac: macFromMachineId(machineId),
      dns: guestResolvers(this.o.dns ?? []).servers,
    };
    return { machineId, network, exposedPorts };
  }

  private slotLeases(): Promise<{ path: string; lease: SlotLease | "corrupt" }[]> {
    return this.leasesIn<SlotLease>("slots");
  }

  private portLeases(): Promise<{ path: string; lease: PortLease | "corrupt" }[]> {
    return this.leasesIn<PortLease>("ports");
  }

  /** Every lease file under `<dir>/<sub>` that still exists when read. */
  private async leasesIn<T>(sub: "slots" | "ports"): Promise<{ path: string; lease: T | "corrupt" }[]> {
    const dir = join(this.dir, sub);
    const out: { path: string; lease: T | "corrupt" }[] = [];
    for (const name of await leaseNames(dir)) {
      const lease = await readJson<T>(join(dir, name));
      if (lease !== null) out.push({ path: join(dir, name), lease });
    }
    return out;
  }

  private async leaseOf(machineId: string): Promise<{ path: string; lease: SlotLease } | undefined> {
    for (const l of await this.slotLeases()) if (l.lease !== "corrupt" && l.lease.machineId === machineId) return { path: l.path, lease: l.lease };
    return undefined;
  }

  private static async live(l: SlotLease): Promise<boolean> {
    return (await ownerAlive(l.owner)) || (await ownerAlive(l.vmm));
  }

  private async liveSlots(): Promise<SlotLease[]> {
    const out: SlotLease[] = [];
    for (const { lease } of await this.slotLeases()) if (lease !== "corrupt" && (await LibraryNetwork.live(lease))) out.push(lease);
    return out;
  }

  /**
   * Deletes dead slot leases (tearing down what their machine left on the host) and port leases
   * whose slot lease is gone; returns what is left. Only under the lock: nobody else removes a
   * lease meanwhile, so the one judged dead is the one deleted.
   */
  private async reclaim(): Promise<{ slots: SlotLease[]; ports: PortLease[]; reclaimed: number }> {
    const slots: SlotLease[] = [];
    let reclaimed = 0;
    for (const { path, lease } of await this.slotLeases()) {
      if (lease !== "corrupt" && (await LibraryNetwork.live(lease))) {
        slots.push(lease);
        continue;
      }
      if (lease !== "corrupt") await this.fabric.detach(lease.machineId);
      await removeFile(path);
      reclaimed++;
    }
    const ports: PortLease[] = [];
    for (const { path, lease } of await this.portLeases()) {
      const ok = lease !== "corrupt" && slots.some((s) => s.machineId === lease.machineId && s.spec.network.slot === lease.slot);
      if (ok) ports.push(lease);
      else await removeFile(path);
    }
    return { slots, ports, reclaimed };
  }

  private async dropLeases(machineId: string): Promise<void> {
    for (const { path, lease } of await this.portLeases()) if (lease !== "corrupt" && lease.machineId === machineId) await removeFile(path);
    const found = await this.leaseOf(machineId);
    if (found) await removeFile(found.path);
  }

  /**
   * The host table from every live lease; the first call of this process also prepares the host.
   * With no live lease the table goes: the last machine leaves no rule behind.
   */
  private async applyLive(): Promise<void> {
    const live = await this.liveSpecs();
    if (live.length === 0) return this.fabric.dropHostRules();
    const applied = this.fabric.applyHostRules(live);
    // init() applies the state just asked for (never an older one), and only once per process.
    await Promise.all([applied, this.fabric.init()]);
  }
}
