/**
 * The one way a machine's status changes: a conditional transition in the store (it may lose to
 * a concurrent one, then undefined), published on the status bus so waiters hear of it. The
 * lifecycle, the image pulls and reconciliation all write statuses through it, so none of them
 * needs another to be built first.
 */
import type { MachineStatus } from "../core/machine-state.js";
import type { MachinePatch, MachineRecord } from "../core/machine.js";
import { checkAdmission, type Capacity } from "../core/capacity.js";
import type { Admit, MachineRepository } from "../store/machine-repository.js";
import { StatusBus } from "./status-bus.js";

export class MachineStatuses {
  readonly bus = new StatusBus();

  /** @param capacity admission limits checked on every move to `starting`; undefined admits everything. */
  constructor(
    private readonly repo: MachineRepository,
    private readonly capacity?: Capacity,
  ) {}

  /**
   * A status change that may lose to a concurrent one (then undefined); waiters hear of it. A move
   * to `starting` is a start, however it comes about (start, create with start, restart): it must
   * fit in what machines holding a VMM leave free, or it throws INSUFFICIENT_CAPACITY. The check
   * and the change are one transaction; the machine's share is given back by leaving the
   * statuses that hold a VMM (stopped, failed, deleted), so it is always what the store says.
   */
  async settle(id: string, from: readonly MachineStatus[], to: MachineStatus, patch: MachinePatch, reason: string): Promise<MachineRecord | undefined> {
    const cap = this.capacity;
    const admit: Admit | undefined = to === "starting" && cap ? (self, used) => checkAdmission(self, used, cap) : undefined;
    const rec = await this.repo.transition(id, from, to, patch, reason, admit);
    if (rec) this.bus.publish({ kind: "updated", machine: rec });
    return rec;
  }
}
