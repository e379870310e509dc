/**
 * Machine records -> VMs: the boot paths a new machine records (configuration overrides, then the
 * guest assets in `assetsDir`, which may differ from the data dir), the VmSpec of a recorded
 * machine (src/vmm/spec.ts, pure), its disk (the registry's disk provider), and the driver that
 * boots or adopts its VMM. No other layer resolves boot paths for the daemon.
 */
import { join } from "node:path";
import { HyperfleetError } from "../core/errors.js";
import type { MachineRecord } from "../core/machine.js";
import type { AttachedNetwork } from "../core/ports/network.js";
import type { DiskSpec, VmmKind, VmSnapshot, VmSpec } from "../core/ports/vmm-driver.js";
import type { GuestAssets } from "../assets/index.js";
import { networkedBoot } from "../network/networked-boot.js";
import { hostTscKhz } from "../vmm/host.js";
import type { DriverRegistry, FoundVmm } from "../vmm/registry.js";
import { buildVmSpec, devicesFor, needsAssets, resolveBootPaths, type BootOverrides, type BootPaths } from "../vmm/spec.js";
import { Vm } from "../vmm/vm.js";

export type { BootPaths } from "../vmm/spec.js";

/** Only the count of NICs picks the initramfs (initramfsFor): the TAP and MAC here are placeholders. */
const ONE_NIC = [{ tap: "tap0", mac: "02:00:00:00:00:00" }];

export interface VmFactoryOptions {
  dataDir: string;
  /** HYPERFLEET_SOCKET_DIR: run dirs go to `<socketDir>/hyperfleet/<id>`; null: `<dataDir>/machines/<id>`. */
  socketDir: string | null;
  /** Kernel, initrd, kernel arguments and root disk the configuration sets (null: the assets'). */
  guest: BootOverrides;
  /** The guest assets (loaded on first use, only when the configuration leaves something to them). */
  assets: () => Promise<GuestAssets>;
  registry: DriverRegistry;
  startTimeoutMs: number;
  /** A machine's volume disks, formatted if new (MachineVolumes.disks); absent: machines have none. */
  volumeDisks?: (rec: MachineRecord, signal: AbortSignal) => Promise<DiskSpec[]>;
}

/** The boot paths a machine recorded; INTERNAL when it has none (it was never resolved). */
function bootPathsOf(rec: MachineRecord): BootPaths {
  if (rec.kernelImagePath === null || rec.rootfsPath === null) {
    throw new HyperfleetError("INTERNAL", `machine ${rec.id} has no boot paths recorded; start it again`);
  }
  return { kernelImagePath: rec.kernelImagePath, initrdPath: rec.initrdPath, kernelArgs: rec.kernelArgs, rootfsPath: rec.rootfsPath };
}

export class VmFactory {
  constructor(private readonly o: VmFactoryOptions) {}

  /** Where per-machine run dirs live (reconciliation scans it for orphans). */
  get runDirBase(): string {
    // Orphan cleanup kills VMMs in run dirs under this base that no machine owns, so it must hold
    // only the daemon's: not the socket dir itself, and not `<dataDir>/vms`, where library users
    // (the SDK, benchmarks) sharing the data dir keep their VMs.
    return this.o.socketDir === null ? join(this.o.dataDir, "machines") : join(this.o.socketDir, "hyperfleet");
  }

  runDirFor(id: string): string {
    return join(this.runDirBase, id);
  }

  /**
   * What a machine boots, recorded on it so the API can show it: with `nic`, the initramfs that
   * has the NIC driver (a machine with a network) and, under Firecracker, the vsock one. Throws
   * GUEST_ASSETS_MISSING when something must come from a manifest that is not there.
   */
  async bootPaths(devices: { nic?: boolean } = {}): Promise<BootPaths> {
    const assets = needsAssets(this.o.guest) ? await this.o.assets() : null;
    return resolveBootPaths(this.o.guest, assets, devicesFor(this.o.registry.kind, devices.nic === true ? ONE_NIC : []));
  }

  /**
   * Boots the machine's VM from its recorded boot paths, in its network namespace with its NIC
   * when `net` is given; resolves once the guest agent answers.
   */
  async boot(rec: MachineRecord, net: AttachedNetwork | null, signal: AbortSignal): Promise<Vm> {
    const rootDisk = await this.o.registry.disks.rootDisk(bootPathsOf(rec).rootfsPath, rec.runDir);
    const extra = await this.extraDisks(rec, signal);
    return Vm.boot(await this.o.registry.driver(), this.spec(rec, rootDisk, net, extra), this.o.startTimeoutMs, signal);
  }

  /**
   * Starts the machine's VM from a snapshot: a clone's (its own disk over the snapshot's frozen
   * one) or its own suspended state (its own disk, as it was); resolves once the agent answers.
   * The VM gets the same devices as at boot, which is what the snapshot's source had.
   */
  async restore(rec: MachineRecord, snapshot: VmSnapshot, net: AttachedNetwork | null, signal: AbortSignal): Promise<Vm> {
    const disks = this.o.registry.disks;
    let rootDisk: DiskSpec;
    if (snapshot.disk !== null) {
      // A clone's disk from an earlier attempt that never got to `running` may have taken writes
      // the snapshot's memory knows nothing of: every first restore starts from the frozen disk.
      await disks.removeDisk(rec.runDir);
      rootDisk = await disks.cloneDisk(snapshot.disk, rec.runDir);
    } else {
      rootDisk = await disks.rootDisk(bootPathsOf(rec).rootfsPath, rec.runDir);
    }
    try {
      // A suspended machine's saved devices include its volumes' disks: the same ones again.
      const extra = await this.extraDisks(rec, signal);
      return await Vm.restore(await this.o.registry.driver(), this.spec(rec, rootDisk, net, extra), snapshot, this.o.startTimeoutMs, signal);
    } catch (e) {
      // A clone that never ran keeps no disk: the next attempt makes a fresh one.
      if (snapshot.disk !== null) await this.discardDisk(rec);
      throw e;
    }
  }

  /** Removes the machine's disk (a clone whose restore could not be completed). */
  discardDisk(rec: MachineRecord): Promise<void> {
    return this.o.registry.disks.removeDisk(rec.runDir);
  }

  /**
   * The VMM this daemon boots with: the driver's kind once it is made (with `auto`, the choice),
   * else the configured one (a host without guest assets can still create machines).
   */
  async vmmKind(): Promise<VmmKind> {
    try {
      return (await this.o.registry.driver()).kind;
    } catch {
      return this.o.registry.kind;
    }
  }

  /** The VMM in use and how it runs guests, for GET /health; null when no driver can be made here. */
  async vmmInfo(): Promise<{ kind: VmmKind; accel: "kvm" | "tcg" } | null> {
    try {
      const d = await this.o.registry.driver();
      return { kind: d.kind, accel: d.accel };
    } catch {
      return null;
    }
  }

  /** What saved state this host's VMM can restore: part of a warm template's key. */
  async vmmFingerprint(): Promise<string> {
    return (await this.o.registry.driver()).fingerprint();
  }

  private async extraDisks(rec: MachineRecord, signal: AbortSignal): Promise<DiskSpec[]> {
    if (rec.volumes.length === 0) return [];
    if (!this.o.volumeDisks) throw new HyperfleetError("INTERNAL", `machine ${rec.id} has volumes but this daemon was wired without them`);
    return this.o.volumeDisks(rec, signal);
  }

  private spec(rec: MachineRecord, rootDisk: DiskSpec, net: AttachedNetwork | null, extraDisks: DiskSpec[] = []): VmSpec {
    const kind = this.o.registry.kind;
    const nb = net === null ? null : networkedBoot(net, rec.network?.dns ?? []);
    const spec = buildVmSpec({
      id: rec.id,
      vcpuCount: rec.vcpuCount,
      memSizeMib: rec.memSizeMib,
      boot: bootPathsOf(rec),
      rootDisk,
      devices: devicesFor(kind, nb?.nics),
      ...(nb !== null && { guestNet: nb.guestNet }),
      runDir: rec.runDir,
      tscKhz: hostTscKhz(),
    });
    const withDisks = extraDisks.length > 0 ? { ...spec, extraDisks } : spec;
    return nb === null ? withDisks : { ...withDisks, netns: nb.netns };
  }

  /** Re-attaches to the machine's VMM left by an earlier daemon; null when it is gone. */
  async adopt(rec: MachineRecord): Promise<Vm | null> {
    return Vm.adopt(await this.o.registry.driver(), rec.id, rec.runDir);
  }

  /**
   * Ends every VMM still using `runDir`, tracked or not: a machine's before its dir is removed, or
   * a run dir no machine owns.
   */
  killVmmsIn(runDir: string): Promise<number[]> {
    return this.o.registry.scan.killIn(runDir);
  }

  /** Every VMM in our run dirs, found in /proc rather than from what was recorded. */
  findVmms(): Promise<FoundVmm[]> {
    return this.o.registry.scan.findUnder(this.runDirBase);
  }

  /** Kills a VMM found by findVmms if it is still that process; true when it was killed. */
  killFound(v: FoundVmm): Promise<boolean> {
    return this.o.registry.scan.kill(v);
  }
}
