/**
 * Which machines have their network up, and the host's network state that follows from it
 * (docs/adr/0008). A machine's network comes up before its VMM starts and goes after its VMM has
 * ended; the host rules are rebuilt from the set of machines whose network is up, so they never
 * hold a stopped machine's forwards. Nothing touches the host until the first networked machine
 * starts (or an earlier daemon's leftovers are found): a daemon whose machines have no network
 * changes nothing on the host.
 */
import { HyperfleetError } from "../core/errors.js";
import type { MachineRecord } from "../core/machine.js";
import type { AttachedNetwork, NetworkFabric, NetworkSweep, VmNetworkSpec } from "../core/ports/network.js";
import { Semaphore } from "../host/semaphore.js";
import { checkPortsStillFree, type PortProbe } from "../network/exposed-ports.js";
import { probePort } from "../network/port-probe.js";
import type { MachineRepository } from "../store/machine-repository.js";

export class MachineNetworks {
  /** Machines whose network is up or coming up: what the host rules are built from. */
  private readonly up = new Set<string>();
  private ready: Promise<void> | null = null;
  /** One rules rebuild at a time, each reading the set after the previous one applied. */
  private readonly rulesLock = new Semaphore(1);

  constructor(
    private readonly fabric: NetworkFabric | null,
    private readonly repo: MachineRepository,
    private readonly probe: PortProbe = probePort,
  ) {}

  /**
   * Brings up `rec`'s network for a boot; null when it has none. Undo with `release`. Throws
   * PORT_UNAVAILABLE when a host process took one of its ports since create.
   */
  async attach(rec: MachineRecord): Promise<AttachedNetwork | null> {
    const spec = specOf(rec);
    if (spec === null) return null;
    await checkPortsStillFree(rec.exposedPorts, this.probe, "delete the machine and create it with another host_port");
    const fabric = await this.initialized();
    this.up.add(rec.id);
    const attached = await fabric.attach(spec);
    await this.syncRules();
    return attached;
  }

  /**
   * Takes down the machine's network once its VMM is gone (stop, exit, failed boot, delete).
   * Idempotent; a machine without a network costs nothing.
   */
  async release(id: string): Promise<void> {
    const wasUp = this.up.delete(id);
    if (this.fabric === null) return;
    if (!wasUp && (await this.repo.get(id))?.network == null) return;
    await this.fabric.detach(id);
    // The host rules hold only machines that are up: one that was not (created with a network and
    // deleted without a start, or released already at its stop) leaves them as they are, so
    // deleting it changes nothing on the host.
    if (wasUp) await this.syncRules();
  }

  /** A running machine adopted after a daemon restart: its namespace is still there. */
  adopted(rec: MachineRecord): void {
    if (rec.network !== null) this.up.add(rec.id);
  }

  /**
   * After reconciliation: deletes namespaces and veths no running machine owns (a crash at any
   * step of a start or stop leaves some) and rebuilds the host rules for the adopted machines.
   * `earlierMayHaveRules`: a networked machine was starting, running, stopping or being deleted
   * when the previous daemon ended, so its rules may still be in the host table even though its
   * namespace is gone (a crash between taking the namespace down and rebuilding the rules): the
   * rules are rebuilt then even when no machine is up and nothing was swept.
   */
  async reconcile(earlierMayHaveRules = false): Promise<NetworkSweep> {
    if (this.fabric === null) return { namespaces: [], links: [] };
    const keep = await this.specsOf(this.up);
    const swept = await this.fabric.sweep(new Set(keep.map((s) => s.machineId)));
    if (keep.length > 0 || swept.namespaces.length > 0 || swept.links.length > 0 || earlierMayHaveRules) {
      await this.initialized();
      await this.syncRules();
    }
    return swept;
  }

  private async initialized(): Promise<NetworkFabric> {
    const fabric = this.fabric;
    if (fabric === null) throw new HyperfleetError("NOT_SUPPORTED_YET", "this daemon has no VM networking; create the machine with \"network\": false");
    this.ready ??= fabric.init().catch((e: unknown) => {
      this.ready = null; // a host that was not ready (a tool missing) may be fixed without a restart
      throw e;
    });
    await this.ready;
    return fabric;
  }

  private async syncRules(): Promise<void> {
    const release = await this.rulesLock.acquire();
    try {
      await this.fabric!.applyHostRules(await this.specsOf(this.up));
    } finally {
      release();
    }
  }

  /** The network specs of the machines in `ids` that have a network. */
  private async specsOf(ids: ReadonlySet<string>): Promise<VmNetworkSpec[]> {
    if (ids.size === 0) return [];
    const recs = await this.repo.list();
    return recs.filter((r) => ids.has(r.id)).flatMap((r) => specOf(r) ?? []);
  }
}

function specOf(rec: MachineRecord): VmNetworkSpec | null {
  return rec.network === null ? null : { machineId: rec.id, network: rec.network, exposedPorts: rec.exposedPorts };
}
