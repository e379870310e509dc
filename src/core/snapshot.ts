/**
 * The snapshot model (docs/adr/0009): a running machine saved so that new machines start from it
 * in tens of milliseconds instead of booting. It holds what its VMM wrote (VmSnapshot: device
 * state, a memory file clones map copy-on-write, the frozen root disk) and what a machine created
 * from it inherits from its source, since a restored VM must have its source's shape and devices.
 */
import type { MachineRecord } from "./machine.js";
import type { VmmKind, VmSnapshot } from "./ports/vmm-driver.js";

/**
 * What a machine created from a snapshot takes from the snapshot's source: its shape, boot paths
 * (the base root disk; the frozen one is VmSnapshot.disk), image and main process overrides.
 */
export type SnapshotSource = Pick<
  MachineRecord,
  "vcpuCount" | "memSizeMib" | "initrdPath" | "kernelArgs" | "rootfsPath" | "imageRef" | "imageDigest" | "imageConfig" | "cmd" | "entrypoint" | "workdir" | "user"
> & {
  kernelImagePath: string;
  /** The source had a NIC: a clone has one too (its own namespace, same guest address; ADR 0008). */
  network: boolean;
  /** The source's NIC MAC: the restored NIC keeps it (device state), so a clone's record shows it. */
  mac: string | null;
  /** The VMM that wrote it (its device state is that VMM's): its clones' `vmm`. Absent in snapshots from before it was recorded: QEMU's. */
  vmm?: VmmKind;
};

export interface SnapshotRecord {
  /** `snap_<ULID>`. */
  id: string;
  /** The machine it was taken from; it may have been deleted since. */
  machineId: string;
  vm: VmSnapshot;
  source: SnapshotSource;
  sizeBytes: number;
  /**
   * Taken by a fork for its clones rather than asked for: deleted with the last machine made from
   * it, and not listed by GET /snapshots.
   */
  auto: boolean;
  /**
   * A warm image template's content key (image disk, kernel, initramfs, kernel arguments, shape,
   * NIC, VMM build); null for other snapshots. Templates are a cache: kept when their last machine
   * goes, evicted least recently used first.
   */
  templateKey: string | null;
  createdAt: string;
  /** When a machine was last created or restored from it. */
  lastUsedAt: string;
}
