/**
 * The driver registry: which VmmDriver, DiskProvider and VMM process scan a host uses, chosen by
 * configuration: QEMU (qcow2 overlays) or Firecracker (raw copies). The choice is made once per
 * registry and shared by every VM: `accel: auto` costs a QEMU probe boot and `vmm: auto` a
 * Firecracker one, whose verdicts are cached on disk (qemu/accel.ts, firecracker/probe.ts).
 */
import { HyperfleetError } from "../core/errors.js";
import type { DiskProvider } from "../core/ports/disk-provider.js";
import type { VmmDriver, VmmKind } from "../core/ports/vmm-driver.js";
import { join } from "node:path";
import { initramfsFor, loadGuestAssets, MANIFEST_FILE, type GuestAssets } from "../assets/index.js";
import { qcow2Overlays, rawCopies } from "./disks.js";
import { FirecrackerDriver } from "./firecracker/driver.js";
import { findBinary, probeFirecracker } from "./firecracker/probe.js";
import { resolveJailerSettings, type JailerChoice } from "./firecracker/jailer.js";
import { findFirecrackersUnder, killFirecrackersIn, killFoundFirecracker } from "./firecracker/scan.js";
import { vmmEnv } from "./process.js";
import { devicesFor } from "./spec.js";
import { hostTscKhz } from "./host.js";
import { buildKernelArgs } from "./kernel-args.js";
import { probeAccel } from "./qemu/accel.js";
import { QemuDriver } from "./qemu/driver.js";
import { findVmmsUnder, killFoundVmm, killVmmsIn } from "./qemu/scan.js";
import type { FoundVmm } from "./process-scan.js";

export type { FoundVmm } from "./process-scan.js";

export interface VmmChoice {
  kind: VmmKind;
  /** `auto`: KVM only if a probe VM boots with it, else TCG (QEMU). */
  accel: "auto" | "kvm" | "tcg";
  /** Where the probe's verdict is cached. */
  cacheDir: string;
  /** The guest assets the probe boots (only asked for with `accel: auto`). */
  assets: () => Promise<GuestAssets>;
  /** The firecracker binary (a path or a name on PATH); default `firecracker`. */
  firecrackerBinary?: string;
  /**
   * HYPERFLEET_JAILER=on: Firecracker VMs start through the jailer with these settings (checked on
   * the host when the driver is made: jailer.resolveJailerSettings). Ignored by QEMU.
   */
  jailer?: JailerChoice & { memOverheadMib: number };
}

/** Finding and ending a backend's VMM processes by run dir, tracked or not (reconciliation, deletes). */
export interface VmmScan {
  /** Every VMM whose run dir lies under `base`. */
  findUnder(base: string): Promise<FoundVmm[]>;
  /** Kills `v` if it is still that process (pid reuse is checked); true when it was killed. */
  kill(v: FoundVmm): Promise<boolean>;
  /** Kills every VMM using `runDir`; their pids. */
  killIn(runDir: string): Promise<number[]>;
}

interface Backend {
  driver(c: VmmChoice): Promise<VmmDriver>;
  disks: DiskProvider;
  scan: VmmScan;
}

const BACKENDS: Record<VmmKind, Backend | null> = {
  qemu: {
    async driver(c) {
      if (c.accel !== "auto") return new QemuDriver({ accel: c.accel });
      const assets = await c.assets();
      const verdict = await probeAccel({
        cacheDir: c.cacheDir,
        spec: {
          vcpus: 1,
          memMib: 256,
          kernelPath: assets.vmlinux,
          initrdPath: initramfsFor(assets, { nics: 0, vsock: false }),
          kernelArgs: buildKernelArgs({ tscKhz: hostTscKhz() ?? undefined }),
          rootDisk: { path: assets.rootfs, format: "raw" },
        },
      });
      return new QemuDriver({ accel: verdict.accel });
    },
    disks: qcow2Overlays,
    scan: { findUnder: findVmmsUnder, kill: (v) => killFoundVmm(v), killIn: killVmmsIn },
  },
  firecracker: {
    async driver(c) {
      const binary = c.firecrackerBinary ?? "firecracker";
      if (!c.jailer) return new FirecrackerDriver({ binary });
      // The jailer needs a path: a name is looked up on PATH as a plain spawn would.
      const found = findBinary(binary, vmmEnv().PATH ?? "") ?? binary;
      return new FirecrackerDriver({ jailer: await resolveJailerSettings(c.jailer, found, c.jailer.memOverheadMib) });
    },
    disks: rawCopies,
    scan: { findUnder: findFirecrackersUnder, kill: (v) => killFoundFirecracker(v), killIn: killFirecrackersIn },
  },
};

function backendOf(kind: VmmKind): Backend {
  const b = BACKENDS[kind];
  if (!b) throw new HyperfleetError("NOT_SUPPORTED_YET", `the ${kind} VMM is not supported yet; use qemu`);
  return b;
}

export interface VmmSelection extends Omit<VmmChoice, "kind"> {
  /** `auto`: Firecracker when its binary is found and a probe guest boots with it on KVM, else QEMU. */
  vmm: VmmKind | "auto";
  log?: (msg: string) => void;
}

/** Which VMM `s` means on this host; `auto` may cost one probe boot (cached). */
export async function selectVmm(s: VmmSelection): Promise<{ kind: VmmKind; reason: string }> {
  if (s.vmm !== "auto") return { kind: s.vmm, reason: "configured" };
  const verdict = await probeFirecracker({
    cacheDir: s.cacheDir,
    binary: s.firecrackerBinary ?? "firecracker",
    searchPath: vmmEnv().PATH ?? "",
    spec: async () => {
      const assets = await s.assets();
      const devices = devicesFor("firecracker");
      return {
        vcpus: 1,
        memMib: 256,
        kernelPath: assets.vmlinux,
        initrdPath: initramfsFor(assets, { nics: 0, vsock: devices.vsock }),
        kernelArgs: buildKernelArgs({ console: "ttyS0", tscKhz: hostTscKhz() ?? undefined }),
        rootDisk: { path: assets.rootfs, format: "raw" },
      };
    },
    ...(s.log ? { log: s.log } : {}),
  });
  return verdict.usable ? { kind: "firecracker", reason: verdict.reason } : { kind: "qemu", reason: `Firecracker not used: ${verdict.reason}` };
}

/** The registry of the VMM `s` selects (see selectVmm), chosen now. */
export async function openDriverRegistry(s: VmmSelection): Promise<DriverRegistry> {
  const { kind } = await selectVmm(s);
  return new DriverRegistry({ kind, accel: s.accel, cacheDir: s.cacheDir, assets: s.assets, ...(s.firecrackerBinary ? { firecrackerBinary: s.firecrackerBinary } : {}), ...(s.jailer ? { jailer: s.jailer } : {}) });
}

export class DriverRegistry {
  private driverP: Promise<VmmDriver> | null = null;
  private chosen: { kind: VmmKind; backend: Backend } | null = null;
  private readonly choice: VmmChoice | VmmSelection;

  /**
   * A VmmSelection with `vmm: auto` is decided on the first driver() call (it may cost a probe
   * boot), unless no firecracker binary exists, which settles it on QEMU at once; until then
   * kind, disks and scan are not known and throw.
   */
  constructor(choice: VmmChoice | VmmSelection) {
    this.choice = choice;
    const kind = "kind" in choice ? choice.kind : choice.vmm !== "auto" ? choice.vmm : findBinary(choice.firecrackerBinary ?? "firecracker", vmmEnv().PATH ?? "") === null ? "qemu" : null;
    if (kind !== null) this.chosen = { kind, backend: backendOf(kind) };
  }

  private get settled(): { kind: VmmKind; backend: Backend } {
    if (!this.chosen) throw new HyperfleetError("INTERNAL", "the VMM is chosen by the first driver() call; ask for the driver first");
    return this.chosen;
  }

  get kind(): VmmKind {
    return this.settled.kind;
  }

  /** The driver; made on first use (a failed attempt is retried on the next call). */
  driver(): Promise<VmmDriver> {
    if (!this.driverP) {
      const p = this.makeDriver();
      p.catch(() => {
        if (this.driverP === p) this.driverP = null;
      });
      this.driverP = p;
    }
    return this.driverP;
  }

  private async makeDriver(): Promise<VmmDriver> {
    if (!this.chosen && "vmm" in this.choice) {
      const { kind } = await selectVmm(this.choice);
      this.chosen = { kind, backend: backendOf(kind) };
    }
    const { kind, backend } = this.settled;
    return backend.driver({ kind, accel: this.choice.accel, cacheDir: this.choice.cacheDir, assets: this.choice.assets, ...(this.choice.firecrackerBinary ? { firecrackerBinary: this.choice.firecrackerBinary } : {}), ...(this.choice.jailer ? { jailer: this.choice.jailer } : {}) });
  }

  get disks(): DiskProvider {
    return this.settled.backend.disks;
  }

  get scan(): VmmScan {
    return this.settled.backend.scan;
  }
}

/**
 * Loads the guest assets manifest of `dir` once (a failure is retried on the next call): what the
 * registry's probe and the boot paths of every VM read.
 */
export function guestAssetsIn(dir: string): () => Promise<GuestAssets> {
  let p: Promise<GuestAssets> | null = null;
  return () => {
    if (!p) {
      const attempt = loadGuestAssets(dir).catch((e: unknown) => {
        if (p === attempt) p = null;
        throw e instanceof HyperfleetError ? e : new HyperfleetError("GUEST_ASSETS_MISSING", `no guest assets in ${join(dir, MANIFEST_FILE)}; run \`npm run setup\``, { cause: e });
      });
      p = attempt;
    }
    return p;
  };
}
