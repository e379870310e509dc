/**
 * What a VM boots, pure: boot paths from the machine's overrides and the guest assets (the
 * initramfs chosen by the VM's devices), then the VmSpec a driver takes. The daemon and the
 * in-process Machine both build their VMs here, so there is one answer to "which kernel, which
 * initramfs, which disk".
 */
import { resolve } from "node:path";
import { HyperfleetError } from "../core/errors.js";
import type { DiskSpec, NicSpec, VmmKind, VmSpec } from "../core/ports/vmm-driver.js";
import { initramfsFor, type GuestAssets } from "../assets/index.js";
import { buildKernelArgs } from "./kernel-args.js";
import type { GuestNetArgs } from "./guest-net-args.js";

/** Kernel, initrd and base root disk of a VM; a null kernelArgs means the fast-boot default. */
export interface BootPaths {
  kernelImagePath: string;
  initrdPath: string | null;
  kernelArgs: string | null;
  rootfsPath: string;
}

/** What the user or the configuration chose; null or absent: from the guest assets. */
export type BootOverrides = { [K in keyof BootPaths]?: BootPaths[K] | null };

/** The devices a VM gets besides its root disk and agent channel. */
export interface VmDevices {
  nics: NicSpec[];
  /** The agent on vsock (Firecracker) instead of virtio-serial (QEMU). */
  vsock: boolean;
}

export const NO_DEVICES: VmDevices = { nics: [], vsock: false };

/**
 * The devices a VM of this VMM kind gets: Firecracker has no virtio-serial, so its agent is on
 * vsock (and its guest needs the initramfs with the vsock driver); QEMU's agent is on virtio-serial.
 */
export function devicesFor(kind: VmmKind, nics: NicSpec[] = []): VmDevices {
  return { nics, vsock: kind === "firecracker" };
}

/** True when `o` leaves something to the guest assets (so they must be loaded first). */
export function needsAssets(o: BootOverrides): boolean {
  return !o.kernelImagePath || !o.rootfsPath;
}

/**
 * Overrides first, then the assets. A custom kernel without a custom initrd boots without one
 * (our initramfs holds modules for our kernel); our kernel gets the initramfs with the drivers of
 * the VM's devices and no more (the basic one unpacks sooner).
 */
export function resolveBootPaths(o: BootOverrides, assets: GuestAssets | null, devices: VmDevices = NO_DEVICES): BootPaths {
  const need = (what: string): GuestAssets => {
    if (assets === null) throw new HyperfleetError("GUEST_ASSETS_MISSING", `no guest assets to take the ${what} from; run \`npm run setup\``);
    return assets;
  };
  // The assets' own kernel named by its path (the SDK example's kernelImagePath) is still ours:
  // its drivers are modules, so it needs our initramfs as much as the default does.
  const kernel = o.kernelImagePath && !(assets !== null && resolve(o.kernelImagePath) === resolve(assets.vmlinux)) ? o.kernelImagePath : null;
  return {
    kernelImagePath: o.kernelImagePath || need("kernel").vmlinux,
    initrdPath: o.initrdPath || (kernel === null ? initramfsFor(need("initramfs"), { nics: devices.nics.length, vsock: devices.vsock }) : null),
    kernelArgs: o.kernelArgs || null,
    rootfsPath: o.rootfsPath || need("root disk").rootfs,
  };
}

export interface VmSpecInput {
  id: string;
  vcpuCount: number;
  memSizeMib: number;
  boot: Omit<BootPaths, "rootfsPath">;
  /** The VM's own writable disk (see DiskProvider), not the base. */
  rootDisk: DiskSpec;
  devices?: VmDevices;
  /** How the guest configures its NIC (kernel parameters the agent applies); absent: it does not.
   * Ignored with custom kernelArgs, which replace the whole command line. */
  guestNet?: GuestNetArgs;
  runDir: string;
  /** Sockets and vsock CID the caller named (VmSpec.controlSocket, agentSocket, guestCid); absent: the driver's defaults. */
  sockets?: Pick<VmSpec, "controlSocket" | "agentSocket" | "guestCid">;
  /** The host's TSC rate, passed to the guest so it skips calibration; null: unknown. */
  tscKhz: number | null;
}

/** The VmSpec a driver boots. Pure: the same input gives the same spec. */
export function buildVmSpec(i: VmSpecInput): VmSpec {
  const nics = i.devices?.nics ?? [];
  return {
    id: i.id,
    vcpus: i.vcpuCount,
    memMib: i.memSizeMib,
    kernelPath: i.boot.kernelImagePath,
    ...(i.boot.initrdPath !== null && { initrdPath: i.boot.initrdPath }),
    kernelArgs: i.boot.kernelArgs ?? buildKernelArgs({
      // A vsock agent means Firecracker, whose only console is the 8250 UART (no virtio console).
      console: i.devices?.vsock === true ? "ttyS0" : "hvc0",
      hostname: i.id.slice(0, 63),
      ...(i.tscKhz !== null && { tscKhz: i.tscKhz }),
      ...(i.guestNet && { net: i.guestNet }),
    }),
    rootDisk: i.rootDisk,
    ...(nics.length > 0 && { nics }),
    runDir: i.runDir,
    ...(i.sockets?.controlSocket !== undefined && { controlSocket: i.sockets.controlSocket }),
    ...(i.sockets?.agentSocket !== undefined && { agentSocket: i.sockets.agentSocket }),
    ...(i.sockets?.guestCid !== undefined && { guestCid: i.sockets.guestCid }),
  };
}
