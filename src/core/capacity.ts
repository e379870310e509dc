/**
 * Admission control, pure: whether one more machine fits next to what the machines holding a VMM
 * were already promised. The store sums those promises and calls `checkAdmission` inside the same
 * transaction as the status change to `starting`, so two concurrent starts cannot both pass when
 * only one fits. Reasoning behind the limits: docs/adr/0006-admission-control.md.
 */
import { HyperfleetError } from "./errors.js";

/** The host's budget for machines (src/config: HYPERFLEET_MAX_MEMORY_MIB and friends). */
export interface Capacity {
  /** Guest memory plus VMM overhead of every machine holding a VMM, in MiB. */
  readonly maxMemoryMib: number;
  /** vCPUs of every machine holding a VMM (overcommitted, but bounded). */
  readonly maxVcpus: number;
  /** vCPUs of one machine: more than the host runs at once only slows the guest down. */
  readonly maxVcpusPerMachine: number;
  /** What one VMM costs beyond its guest memory (QEMU's heap, threads, TCG translation cache). */
  readonly vmOverheadMib: number;
}

/** What machines (other than the one asking) hold now: guest memory and vCPUs, and how many they are. */
export interface Usage {
  readonly machines: number;
  readonly memSizeMib: number;
  readonly vcpus: number;
}

/** The machine that wants to start. */
export interface Demand {
  readonly vcpuCount: number;
  readonly memSizeMib: number;
}

/** Memory a machine is charged: its guest memory and its VMM's overhead. */
export function chargedMemoryMib(memSizeMib: number, cap: Capacity): number {
  return memSizeMib + cap.vmOverheadMib;
}

/**
 * null when `want` fits next to `used`; else INSUFFICIENT_CAPACITY saying what is needed, what is
 * free, and which variable sets the limit.
 *
 * @example
 * checkAdmission({ vcpuCount: 1, memSizeMib: 16384 }, { machines: 1, memSizeMib: 18272, vcpus: 1 }, cap)
 * // INSUFFICIENT_CAPACITY: starting this machine needs 16544 MiB (16384 guest + 160 VMM overhead); 2048 of 20480 MiB are free (HYPERFLEET_MAX_MEMORY_MIB)
 */
export function checkAdmission(want: Demand, used: Usage, cap: Capacity): HyperfleetError | null {
  if (want.vcpuCount > cap.maxVcpusPerMachine) {
    return refuse(
      `this machine has ${want.vcpuCount} vCPUs; this host runs machines of at most ${cap.maxVcpusPerMachine} (HYPERFLEET_MAX_VCPUS_PER_MACHINE): lower vcpu_count`,
      { resource: "vcpus_per_machine", needed: want.vcpuCount, limit: cap.maxVcpusPerMachine },
    );
  }
  const need = chargedMemoryMib(want.memSizeMib, cap);
  const usedMem = used.memSizeMib + used.machines * cap.vmOverheadMib;
  const freeMem = Math.max(0, cap.maxMemoryMib - usedMem);
  if (need > freeMem) {
    const never = need > cap.maxMemoryMib ? "; it cannot fit even on an idle host: lower mem_size_mib" : "; stop or delete machines, or retry later";
    return refuse(
      `starting this machine needs ${need} MiB (${want.memSizeMib} guest + ${cap.vmOverheadMib} VMM overhead); ${freeMem} of ${cap.maxMemoryMib} MiB are free (HYPERFLEET_MAX_MEMORY_MIB)${never}`,
      { resource: "memory_mib", needed: need, free: freeMem, limit: cap.maxMemoryMib },
    );
  }
  const freeVcpus = Math.max(0, cap.maxVcpus - used.vcpus);
  if (want.vcpuCount > freeVcpus) {
    return refuse(
      `starting this machine needs ${want.vcpuCount} vCPUs; ${freeVcpus} of ${cap.maxVcpus} are free (HYPERFLEET_MAX_VCPUS); stop or delete machines, or retry later`,
      { resource: "vcpus", needed: want.vcpuCount, free: freeVcpus, limit: cap.maxVcpus },
    );
  }
  return null;
}

/** Nothing held: what a machine is checked against when it is created. */
export const NO_USAGE: Usage = Object.freeze({ machines: 0, memSizeMib: 0, vcpus: 0 });

/**
 * A machine that could not start even on an idle host is a bad request, not a busy host:
 * INVALID_ARGUMENT naming the field, with the same message as the start would give.
 */
export function checkFitsHost(want: Demand, cap: Capacity): HyperfleetError | null {
  const e = checkAdmission(want, NO_USAGE, cap);
  if (e === null) return null;
  const field = e.details?.resource === "memory_mib" ? "mem_size_mib" : "vcpu_count";
  return new HyperfleetError("INVALID_ARGUMENT", e.message, { details: { ...e.details, field } });
}

function refuse(message: string, details: Record<string, unknown>): HyperfleetError {
  return new HyperfleetError("INSUFFICIENT_CAPACITY", message, { details });
}
