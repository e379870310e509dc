/**
 * Default admission limits, derived from the host (reasoning: docs/adr/0006-admission-control.md).
 * `defaultCapacity` is pure so the arithmetic is tested with made-up hosts; `hostFacts` reads this one.
 */
import { availableParallelism, totalmem } from "node:os";
import type { Capacity } from "../core/capacity.js";

/** What the defaults are derived from. */
export interface HostFacts {
  /** MemTotal in MiB. */
  memTotalMib: number;
  /** CPUs this process may run on. */
  cpus: number;
}

/**
 * Measured under TCG (docs/adr/0006): an idle VM holds 61-73 MiB of private memory besides its
 * guest RAM, 40-46 MiB of it translation cache, which grows up to tb-size (128 MiB). So 22-27 MiB
 * of QEMU plus a full 128 MiB cache, rounded up.
 */
export const DEFAULT_VM_OVERHEAD_MIB = 160;

/** vCPUs are time-shared; idle ones cost almost nothing, busy ones share the cores. */
export const VCPU_OVERCOMMIT = 4;

/** Left to the host: the daemon, page cache for disks, skopeo/umoci/mkfs during pulls. */
export function hostReserveMib(memTotalMib: number): number {
  return Math.max(1024, Math.floor(memTotalMib / 8));
}

export function defaultCapacity(h: HostFacts): Capacity {
  return {
    maxMemoryMib: Math.max(1, h.memTotalMib - hostReserveMib(h.memTotalMib)),
    maxVcpus: h.cpus * VCPU_OVERCOMMIT,
    maxVcpusPerMachine: h.cpus,
    vmOverheadMib: DEFAULT_VM_OVERHEAD_MIB,
  };
}

export function hostFacts(): HostFacts {
  return { memTotalMib: Math.floor(totalmem() / 2 ** 20), cpus: availableParallelism() };
}
