/**
 * Turns a machine record into a library `Machine`: boot paths from the configuration or the guest
 * assets manifest (in `assetsDir`, which may differ from the data dir), the shared QEMU driver, and
 * the machine's run dir. Paths are always passed explicitly, so the library never looks for assets
 * in the daemon's data dir.
 */
import { join } from "node:path";
import { HyperfleetError } from "../core/errors.js";
import type { VmmDriver } from "../core/ports/vmm-driver.js";
import { initramfsFor } from "../assets/index.js";
import { defaultDriver, resolveGuestAssets } from "../lib/defaults.js";
import { Machine, type MachineOptions } from "../lib/machine.js";
import { QemuDriver } from "../vmm/qemu/driver.js";
import { killVmmsIn } from "../vmm/qemu/scan.js";
import type { MachineRecord } from "../store/records.js";

export interface VmFactoryOptions {
  dataDir: string;
  assetsDir: string;
  /** HYPERFLEET_SOCKET_DIR: run dirs go to `<socketDir>/hyperfleet/<id>`; null: `<dataDir>/machines/<id>`. */
  socketDir: string | null;
  guest: {
    kernelImagePath: string | null;
    initrdPath: string | null;
    kernelArgs: string | null;
    rootfsPath: string | null;
  };
  startTimeoutMs: number;
  /** `auto`: the library's default driver (KVM if a probe boots, else TCG); otherwise QEMU with this accelerator. */
  accel: "auto" | "kvm" | "tcg";
}

/** What a machine boots: recorded on the machine so the API can show it. */
export interface BootPaths {
  kernelImagePath: string;
  initrdPath: string | null;
  kernelArgs: string | null;
  rootfsPath: string;
}

export class VmFactory {
  private fixedDriver: VmmDriver | null = null;

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
   * Kernel, initrd and root disk: configuration overrides first, then the assets manifest. A custom
   * kernel without a custom initrd boots without one (our initramfs holds modules for our kernel).
   * Throws GUEST_ASSETS_MISSING when something must come from a manifest that is not there.
   */
  async bootPaths(): Promise<BootPaths> {
    const g = this.o.guest;
    const needAssets = g.kernelImagePath === null || g.rootfsPath === null;
    const assets = needAssets ? await resolveGuestAssets(this.o.assetsDir) : null;
    return {
      kernelImagePath: g.kernelImagePath ?? assets!.vmlinux,
      // Machines have no NICs or vsock yet (QEMU, agent on virtio-serial).
      initrdPath: g.initrdPath ?? (g.kernelImagePath === null ? initramfsFor(assets!, { nics: 0, vsock: false }) : null),
      kernelArgs: g.kernelArgs,
      rootfsPath: g.rootfsPath ?? assets!.rootfs,
    };
  }

  private driver(): Promise<VmmDriver> {
    if (this.o.accel === "auto") return defaultDriver(this.o.assetsDir);
    this.fixedDriver ??= new QemuDriver({ accel: this.o.accel });
    return Promise.resolve(this.fixedDriver);
  }

  /** Library options from a record; `start` records the boot paths before any VM exists. */
  private async options(rec: MachineRecord): Promise<MachineOptions & { id: string; runDir: string }> {
    if (rec.kernelImagePath === null || rec.rootfsPath === null) {
      throw new HyperfleetError("INTERNAL", `machine ${rec.id} has no boot paths recorded; start it again`);
    }
    return {
      id: rec.id,
      vcpuCount: rec.vcpuCount,
      memSizeMib: rec.memSizeMib,
      dataDir: this.o.dataDir,
      runDir: rec.runDir,
      driver: await this.driver(),
      kernelImagePath: rec.kernelImagePath,
      rootfsPath: rec.rootfsPath,
      ...(rec.initrdPath !== null && { initrdPath: rec.initrdPath }),
      ...(rec.kernelArgs !== null && { kernelArgs: rec.kernelArgs }),
      bootTimeoutMs: this.o.startTimeoutMs,
    };
  }

  /** A Machine ready to start (nothing runs yet). */
  async create(rec: MachineRecord): Promise<Machine> {
    return new Machine(await this.options(rec));
  }

  /** Ends every VMM still using the machine's run dir, tracked or not (before the dir is removed). */
  killVmmsOf(rec: MachineRecord): Promise<number[]> {
    return killVmmsIn(rec.runDir);
  }

  /** Re-attaches to the machine's VMM left by an earlier daemon; null when it is gone. */
  async adopt(rec: MachineRecord): Promise<Machine | null> {
    return Machine.adopt(await this.options(rec));
  }
}
