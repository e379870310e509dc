/**
 * Guest boot assets: the kernel (bzImage + PVH vmlinux), our initramfs (hf-init + virtio modules)
 * and the default base root disk, all under the data directory and recorded in assets.json.
 *
 * @example
 *   const assets = await ensureGuestAssets({ dataDir, agentBinary: "guest/build/hf-agent", initBinary: "guest/build/hf-init" });
 *   // later, wherever VMs are booted:
 *   const { vmlinux, initramfs, rootfs } = await loadGuestAssets(dataDir);
 */
import { join, resolve } from "node:path";
import type { PackageRef } from "./apt-parse.js";
import { findStaticBusybox } from "./busybox.js";
import { sweepStaleWorkDirs } from "./fs-util.js";
import { buildInitramfs } from "./initramfs.js";
import { ensureKernel } from "./kernel.js";
import { writeManifest, type GuestAssets } from "./manifest.js";
import { basicGuestDrivers, DEFAULT_GUEST_DRIVERS, type GuestDriver } from "./modules.js";
import { buildRootfs } from "./rootfs.js";

export { DEFAULT_KERNEL, KERNEL_META_PACKAGE } from "./kernel.js";
export { basicGuestDrivers, DEFAULT_GUEST_DRIVERS, DEFAULT_GUEST_MODULES, VIRTIO_DEVICE_ID, VSOCK_LOOPBACK_ARG, type GuestDriver, type ModuleCondition } from "./modules.js";
export { DEFAULT_ROOTFS_SIZE_MIB } from "./rootfs.js";
export { initramfsFor, loadGuestAssets, MANIFEST_FILE, type GuestAssets, type InitramfsNeeds } from "./manifest.js";

/** Options of ensureGuestAssets. */
export interface EnsureGuestAssetsOptions {
  dataDir: string;
  /** Static hf-agent binary (guest/build/hf-agent), installed as /sbin/hf-agent. */
  agentBinary: string;
  /** Static hf-init binary (guest/build/hf-init), installed as the initramfs's /init. */
  initBinary: string;
  /** Static hf-vsock-pipe (guest/build/hf-vsock-pipe), the vsock loopback test's tool, in the base root disk. */
  vsockPipeBinary?: string;
  log?: (msg: string) => void;
  /** Kernel package to use instead of DEFAULT_KERNEL. */
  kernel?: PackageRef;
  /** Drivers to include, each loaded only for its devices, instead of DEFAULT_GUEST_DRIVERS (dependencies are added). */
  drivers?: readonly GuestDriver[];
  /** Modules to include and always load (dependencies are added); without `drivers` they replace the defaults. */
  modules?: readonly string[];
  rootfsSizeMiB?: number;
  signal?: AbortSignal;
}

/**
 * Makes sure every guest boot asset exists, building only what is missing or out of date, then
 * writes <dataDir>/assets.json. Idempotent and safe to interrupt: each asset is written to a
 * temp name and renamed into place, and the manifest is written last.
 */
export async function ensureGuestAssets(opts: EnsureGuestAssetsOptions): Promise<GuestAssets> {
  const log = opts.log ?? (() => {});
  const dataDir = resolve(opts.dataDir);
  const { signal } = opts;
  const t0 = Date.now();
  const took = (): string => `${((Date.now() - t0) / 1000).toFixed(1)} s`;

  const swept = await sweepStaleWorkDirs(dataDir);
  if (swept.length > 0) log(`removed ${swept.length} work directories left by an interrupted setup`);

  const kernel = await ensureKernel({ dataDir, pinned: opts.kernel, log, signal });
  log(`kernel ${kernel.release} (${kernel.package.name}=${kernel.package.version}) [${took()}]`);

  const initramfsOpts = { outDir: join(dataDir, "initramfs"), kernel, initBinary: resolve(opts.initBinary), modules: opts.modules, signal };
  const initramfs = await buildInitramfs({ ...initramfsOpts, drivers: opts.drivers });
  log(`initramfs ${initramfs.created ? "built" : "up to date"}: ${initramfs.path} (${initramfs.modules.length} modules) [${took()}]`);
  // With only `modules` (no drivers) both lists are the same and so is the file (content-hashed).
  const basicDrivers = basicGuestDrivers(opts.drivers ?? (opts.modules ? [] : DEFAULT_GUEST_DRIVERS));
  const initramfsBasic = await buildInitramfs({ ...initramfsOpts, drivers: basicDrivers });
  log(`initramfs for VMs without NICs or vsock ${initramfsBasic.created ? "built" : "up to date"}: ${initramfsBasic.path} (${initramfsBasic.modules.length} modules) [${took()}]`);

  const busybox = await findStaticBusybox(dataDir, signal);
  const rootfs = await buildRootfs({
    outDir: join(dataDir, "rootfs"),
    dataDir,
    agentBinary: resolve(opts.agentBinary),
    ...(opts.vsockPipeBinary !== undefined && { vsockPipeBinary: resolve(opts.vsockPipeBinary) }),
    busybox,
    sizeMiB: opts.rootfsSizeMiB,
    signal,
  });
  log(`root disk ${rootfs.created ? "built" : "up to date"}: ${rootfs.path} (busybox from ${busybox.path}) [${took()}]`);

  const assets: GuestAssets = {
    kernelVersion: kernel.release,
    kernelPackage: kernel.package,
    bzImage: kernel.bzImage,
    vmlinux: kernel.vmlinux,
    initramfs: initramfs.path,
    initramfsBasic: initramfsBasic.path,
    rootfs: rootfs.path,
    modules: initramfs.modules,
  };
  await writeManifest(dataDir, assets);
  return assets;
}
