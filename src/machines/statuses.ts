/**
 * The one way a machine's status changes: a conditional transition in the store (it may lose to
 * a concurrent one, then undefined), published on the status bus so waiters hear of it. The
 * lifecycle, the image pulls and reconciliation all write statuses through it, so none of them
 * needs another to be built first.
 */
import type { MachineStatus } from "../core/machine-state.js";
import type { MachinePatch, MachineRecord } from "../core/machine.js";
import type { MachineRepository } from "../store/machine-repository.js";
import { StatusBus } from "./status-bus.js";

export class MachineStatuses {
  readonly bus = new StatusBus();

  constructor(private readonly repo: MachineRepository) {}

  async settle(id: string, from: readonly MachineStatus[], to: MachineStatus, patch: MachinePatch, reason: string): Promise<MachineRecord | undefined> {
    const rec = await this.repo.transition(id, from, to, patch, reason);
    if (rec) this.bus.publish({ kind: "updated", machine: rec });
    return rec;
  }
}
