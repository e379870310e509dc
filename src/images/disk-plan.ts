/**
 * Sizing and formatting an image's root disk (pure). The estimate errs on the large side: the disk
 * is a sparse file and VMs write to their own overlays, so unused space costs the host nothing,
 * while a disk that is too small fails the build.
 */
import { mkfsArgs } from "../assets/rootfs-layout.js";

const MiB = 1024 * 1024;
const BLOCK = 4096;
const INODE_SIZE = 256;
/** mke2fs's default for the "default" usage type: one inode per 16 KiB. */
const BYTES_PER_INODE = 16_384;
/** Headroom of an automatically sized disk: +50 %, at least 64 MiB. */
export const AUTO_HEADROOM_RATIO = 0.5;
export const AUTO_HEADROOM_MIN_MIB = 64;

/** What the unpacked tree needs, measured by measureTree. */
export interface TreeUsage {
  /** Data blocks in bytes: files rounded up to 4 KiB (hard links once), directories, long symlinks. */
  dataBytes: number;
  /** Files, directories and links (inodes). */
  inodes: number;
}

/** The disk to build. */
export interface DiskPlan {
  sizeMib: number;
  inodeCount: number;
}

/** mke2fs's journal size for a filesystem of this many bytes (lib/ext2fs/mkjournal.c). */
function journalBytes(fsBytes: number): number {
  const blocks = fsBytes / BLOCK;
  if (blocks < 2048) return 0;
  if (blocks < 32_768) return 1024 * BLOCK;
  if (blocks < 256 * 1024) return 4096 * BLOCK;
  if (blocks < 512 * 1024) return 8192 * BLOCK;
  if (blocks < 4096 * 1024) return 16_384 * BLOCK;
  return 32_768 * BLOCK;
}

function inodeCount(u: TreeUsage, fsBytes: number): number {
  // At least the mke2fs default; more when the image has many small files, plus room for the VM.
  return Math.max(Math.floor(fsBytes / BYTES_PER_INODE), Math.ceil(u.inodes * 1.5) + 1024);
}

/** Bytes a filesystem of fsBytes needs to hold the tree: data, inode tables, journal, metadata. */
function neededBytes(u: TreeUsage, fsBytes: number): number {
  return u.dataBytes + inodeCount(u, fsBytes) * INODE_SIZE + journalBytes(fsBytes) + Math.ceil(fsBytes * 0.02) + 4 * MiB;
}

/** Smallest size in MiB whose filesystem holds the tree. */
export function minimumSizeMib(u: TreeUsage): number {
  let mib = Math.max(8, Math.ceil(u.dataBytes / MiB));
  while (neededBytes(u, mib * MiB) > mib * MiB) mib = Math.ceil(neededBytes(u, mib * MiB) / MiB);
  return mib;
}

/**
 * The disk for a tree: the requested size if it fits (else null, with the minimum to report),
 * or the minimum plus headroom.
 */
export function planDisk(u: TreeUsage, requestedMib?: number): { plan: DiskPlan | null; minimumMib: number } {
  const minimumMib = minimumSizeMib(u);
  if (requestedMib !== undefined) {
    if (requestedMib < minimumMib) return { plan: null, minimumMib };
    return { plan: { sizeMib: requestedMib, inodeCount: inodeCount(u, requestedMib * MiB) }, minimumMib };
  }
  const sizeMib = Math.max(Math.ceil(minimumMib * (1 + AUTO_HEADROOM_RATIO)), minimumMib + AUTO_HEADROOM_MIN_MIB);
  return { plan: { sizeMib, inodeCount: inodeCount(u, sizeMib * MiB) }, minimumMib };
}

/** Inputs of imageMkfsArgs. */
export interface ImageMkfsInput {
  image: string;
  sourceDir: string;
  plan: DiskPlan;
  uuid: string;
}

/**
 * mkfs.ext4 arguments: as the base root disk (src/assets/rootfs-layout.ts) plus an explicit inode
 * count and no reserved blocks (the disk belongs to one VM; root's 5 % reserve protects nothing).
 * `-d` copies ownership and modes from the unpacked tree; `root_owner=0:0` fixes the top directory.
 */
export function imageMkfsArgs(m: ImageMkfsInput): string[] {
  return mkfsArgs({ image: m.image, sourceDir: m.sourceDir, sizeMiB: m.plan.sizeMib, uuid: m.uuid, extra: ["-m", "0", "-N", String(m.plan.inodeCount)] });
}
