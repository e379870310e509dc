/**
 * The disk provider port: turns a base root disk into the disk one VM writes to, in the format its
 * VMM takes. QEMU: a qcow2 overlay on the shared read-only base (milliseconds, a few hundred KiB).
 * Firecracker takes raw disks only: a copy (a reflink where the file system can). A clone's disk
 * is made the same way over its snapshot's frozen disk.
 */
import type { DiskSpec } from "./vmm-driver.js";

export interface DiskProvider {
  /** The format of the disks it makes (what the VMM is told). */
  readonly format: NonNullable<DiskSpec["format"]>;
  /**
   * The VM's writable root disk in `runDir`, made from `base` unless it is already there (a
   * machine keeps its disk across stop and start). GUEST_ASSETS_MISSING when `base` is missing.
   */
  rootDisk(base: string, runDir: string): Promise<DiskSpec>;
  /**
   * A clone's writable root disk in `runDir` over `frozen`, the disk a snapshot froze (VmSnapshot.disk),
   * which stays unchanged while clones use it. Kept like rootDisk's: made only when absent.
   */
  cloneDisk(frozen: DiskSpec, runDir: string): Promise<DiskSpec>;
  /** Removes the VM's disk from `runDir` (a clone whose restore failed must not keep one over its snapshot). */
  removeDisk(runDir: string): Promise<void>;
}
