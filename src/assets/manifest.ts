/**
 * <dataDir>/assets.json: the record of the guest boot assets that setup built, read by everything
 * that boots a VM. Written atomically and last, so its presence means all listed files exist.
 */
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { HyperfleetError } from "../core/errors.js";
import { writeFileAtomic } from "./fs-util.js";

/** The manifest's file name inside the data directory. */
export const MANIFEST_FILE = "assets.json";
const SCHEMA = 1;

/** The guest boot assets. Paths are absolute. */
export interface GuestAssets {
  /** Guest `uname -r`, e.g. "6.1.0-56-cloud-amd64". */
  kernelVersion: string;
  /** The Debian package it came from, e.g. { name: "linux-image-6.1.0-56-cloud-amd64", version: "6.1.192-2" }. */
  kernelPackage: { name: string; version: string };
  /** Compressed kernel (QEMU `-kernel`, slower to boot). */
  bzImage: string;
  /** ELF kernel with a PVH note (QEMU `-kernel`, Firecracker `kernel_image_path`). */
  vmlinux: string;
  /** Uncompressed newc cpio with hf-init as /init and the drivers of every device we support. */
  initramfs: string;
  /** The same with only the drivers of a VM without NICs, vsock or PCI (basicGuestDrivers); see initramfsFor. */
  initramfsBasic: string;
  /** Base root disk (ext4, label hf-root); use it read-only or as an overlay's backing file. */
  rootfs: string;
  /** Module names in the order hf-init loads them. */
  modules: string[];
}

/** The devices of a VM that decide which initramfs it boots with. */
export interface InitramfsNeeds {
  nics: number;
  vsock: boolean;
}

/** The smallest initramfs that has drivers for the VM's devices. */
export function initramfsFor(assets: Pick<GuestAssets, "initramfs" | "initramfsBasic">, needs: InitramfsNeeds): string {
  return needs.nics === 0 && !needs.vsock ? assets.initramfsBasic : assets.initramfs;
}

/** Writes the manifest atomically. */
export async function writeManifest(dataDir: string, assets: GuestAssets): Promise<void> {
  await writeFileAtomic(join(dataDir, MANIFEST_FILE), `${JSON.stringify({ schema: SCHEMA, ...assets }, null, 2)}\n`);
}

function missing(dataDir: string, why: string, cause?: unknown): HyperfleetError {
  return new HyperfleetError("GUEST_ASSETS_MISSING", `guest boot assets in ${dataDir} ${why}: run \`npm run setup\``, {
    cause,
    details: { dataDir },
  });
}

/**
 * Reads the manifest and checks that every file it names exists. Throws GUEST_ASSETS_MISSING
 * (telling the user to run setup) if it is absent, unreadable, from another schema, or stale.
 */
export async function loadGuestAssets(dataDir: string): Promise<GuestAssets> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(join(dataDir, MANIFEST_FILE), "utf8"));
  } catch (e) {
    throw missing(dataDir, `are not set up (no readable ${MANIFEST_FILE})`, e);
  }
  const m = raw as Partial<GuestAssets> & { schema?: number };
  if (m.schema !== SCHEMA) throw missing(dataDir, `were set up by another version (schema ${String(m.schema)})`);
  const files = [m.bzImage, m.vmlinux, m.initramfs, m.initramfsBasic, m.rootfs];
  if (typeof m.kernelVersion !== "string" || !Array.isArray(m.modules) || m.kernelPackage === undefined || files.some((f) => typeof f !== "string")) {
    throw missing(dataDir, `have an incomplete ${MANIFEST_FILE}`);
  }
  for (const f of files as string[]) {
    try {
      await stat(f);
    } catch (e) {
      throw missing(dataDir, `are incomplete (${f} is gone)`, e);
    }
  }
  return {
    kernelVersion: m.kernelVersion,
    kernelPackage: m.kernelPackage,
    bzImage: m.bzImage!,
    vmlinux: m.vmlinux!,
    initramfs: m.initramfs!,
    initramfsBasic: m.initramfsBasic!,
    rootfs: m.rootfs!,
    modules: m.modules,
  };
}
