/**
 * The daemon's in-memory side of machines: the Vm (VMM handle + agent connection) of every VM whose VMM we hold, the
 * abort controller of a boot in progress, and a per-machine queue of background work so a stop
 * issued during a boot runs after the boot has given up, never beside it.
 */
import { HyperfleetError } from "../core/errors.js";
import type { Vm } from "../vmm/vm.js";

export class LiveVms {
  private readonly machines = new Map<string, Vm>();
  private readonly boots = new Map<string, AbortController>();
  private readonly queues = new Map<string, Promise<void>>();

  get(id: string): Vm | undefined {
    return this.machines.get(id);
  }

  set(id: string, m: Vm): void {
    this.machines.set(id, m);
  }

  /** Removes and returns the machine: whoever takes it is responsible for stopping it. */
  take(id: string): Vm | undefined {
    const m = this.machines.get(id);
    this.machines.delete(id);
    return m;
  }

  /** Removes `m` only if it is still the one registered (an exit watcher may fire late). */
  release(id: string, m: Vm): boolean {
    if (this.machines.get(id) !== m) return false;
    this.machines.delete(id);
    return true;
  }

  all(): Array<[string, Vm]> {
    return [...this.machines];
  }

  /** A signal for a new boot of `id`; `abortBoot` fires it. */
  beginBoot(id: string): AbortController {
    const ac = new AbortController();
    this.boots.set(id, ac);
    return ac;
  }

  endBoot(id: string, ac: AbortController): void {
    if (this.boots.get(id) === ac) this.boots.delete(id);
  }

  abortBoot(id: string): void {
    this.boots.get(id)?.abort(new HyperfleetError("OPERATION_CANCELLED", "boot cancelled by a stop or delete"));
  }

  /**
   * Runs `fn` after all work queued earlier for `id`. The returned promise settles with `fn`; the
   * queue itself never rejects, so one failed step does not block the next.
   */
  enqueue(id: string, fn: () => Promise<void>): Promise<void> {
    const prev = this.queues.get(id) ?? Promise.resolve();
    const run = prev.then(fn);
    const tail = run.catch(() => undefined);
    this.queues.set(id, tail);
    void tail.then(() => {
      if (this.queues.get(id) === tail) this.queues.delete(id);
    });
    return run;
  }

  /** Resolves when no background work is queued (tests, orderly shutdown). */
  async idle(): Promise<void> {
    while (this.queues.size > 0) await Promise.all(this.queues.values());
  }
}
