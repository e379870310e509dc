/**
 * What happens to a machine's VM, step by step, each step ending in a persisted status: boot
 * (-> running | failed), halt (-> stopped), destroy (-> row removed), watching for a VMM that exits
 * on its own (-> stopped | failed), adopting one left by an earlier daemon. The service decides
 * whether a user may ask for a step; reconciliation re-runs the same steps after a restart.
 */
import { rm } from "node:fs/promises";
import type { FastifyBaseLogger } from "fastify";
import { checkAdmission, type Capacity } from "../core/capacity.js";
import { toHyperfleetError } from "../core/errors.js";
import { statusAfterUnexpectedExit, type MachineStatus } from "../core/machine-state.js";
import type { Machine } from "../lib/machine.js";
import type { Admit, MachineRepository } from "../store/machine-repository.js";
import type { MachinePatch, MachineRecord } from "../store/records.js";
import { LiveVms } from "./live-vms.js";
import { Semaphore } from "./semaphore.js";
import { StatusBus } from "./status-bus.js";
import type { VmFactory } from "./vm-factory.js";

/** What a boot does beyond starting the VM (image machines: pull first, main process after). */
export interface BootHooks {
  /** Before a boot slot is taken: returns the record to boot (its root disk ready). Throws to fail the boot. */
  prepare(rec: MachineRecord, signal: AbortSignal, log: FastifyBaseLogger): Promise<MachineRecord>;
  /** Once the guest agent answered, before `running` is recorded. Must not throw. */
  booted(rec: MachineRecord, machine: Machine, log: FastifyBaseLogger): Promise<void>;
}

export interface VmLifecycleOptions {
  repo: MachineRepository;
  vms: VmFactory;
  stopTimeoutMs: number;
  /** How many VMs may boot at the same time; more wait in `starting`. */
  maxConcurrentBoots: number;
  /** Admission limits checked on every move to `starting`; undefined admits everything. */
  capacity?: Capacity;
  hooks?: BootHooks;
}

export class VmLifecycle {
  readonly live = new LiveVms();
  readonly bus = new StatusBus();
  private readonly bootSlots: Semaphore;

  constructor(private readonly o: VmLifecycleOptions) {
    this.bootSlots = new Semaphore(o.maxConcurrentBoots);
  }

  /**
   * A status change that may lose to a concurrent one (then undefined); waiters hear of it. A move
   * to `starting` is a start, however it comes about (start, create with start, restart): it must
   * fit in what machines holding a VMM leave free, or it throws INSUFFICIENT_CAPACITY. The check
   * and the change are one transaction; the machine's share is given back by leaving the
   * statuses that hold a VMM (stopped, failed, deleted), so it is always what the store says.
   */
  async settle(id: string, from: readonly MachineStatus[], to: MachineStatus, patch: MachinePatch, reason: string): Promise<MachineRecord | undefined> {
    const cap = this.o.capacity;
    const admit: Admit | undefined = to === "starting" && cap ? (self, used) => checkAdmission(self, used, cap) : undefined;
    const rec = await this.o.repo.transition(id, from, to, patch, reason, admit);
    if (rec) this.bus.publish({ kind: "updated", machine: rec });
    return rec;
  }

  /** Boots a machine in `starting`; ends in `running`, or `failed` with the reason recorded. */
  async boot(starting: MachineRecord, log: FastifyBaseLogger): Promise<void> {
    const id = starting.id;
    const ac = this.live.beginBoot(id);
    const t0 = Date.now();
    let rec = starting;
    let machine: Machine | undefined;
    let release: (() => void) | undefined;
    try {
      // An image pull may take minutes: it must not hold a boot slot meanwhile.
      if (this.o.hooks) rec = await this.o.hooks.prepare(rec, ac.signal, log);
      release = await this.bootSlots.acquire(ac.signal);
      machine = await this.o.vms.create(rec);
      this.live.set(id, machine);
      (await machine.start({ signal: ac.signal })).unwrap();
    } catch (e) {
      const he = toHyperfleetError(e);
      if (machine && this.live.release(id, machine)) await machine.kill();
      const lastError = { code: he.code, message: he.message };
      const failed = await this.settle(id, ["starting"], "failed", { pid: null, lastError }, "boot failed");
      if (failed) log.warn({ err: he, code: he.code }, "machine failed to boot");
      else log.info("boot cancelled");
      return;
    } finally {
      release?.();
      this.live.endBoot(id, ac);
    }
    await this.o.hooks?.booted(rec, machine, log);
    const running = await this.settle(id, ["starting"], "running", { pid: machine.pid }, "guest agent answered");
    // When the settle lost, a stop or delete took over during the boot and owns the machine now.
    if (running) {
      log.info({ pid: machine.pid, boot_ms: Date.now() - t0 }, "machine running");
      this.watchExit(id, machine, log);
    }
  }

  /** Stops the VMM of a machine in `stopping`: graceful first, kill as the last resort. */
  async halt(id: string, log: FastifyBaseLogger): Promise<void> {
    const m = this.live.take(id);
    if (m) {
      const graceful = await m.shutdown({ timeoutMs: this.o.stopTimeoutMs });
      if (!graceful.ok) {
        log.warn({ err: graceful.error }, "graceful stop failed; killing the VMM");
        const killed = await m.kill();
        if (!killed.ok) {
          const lastError = { code: killed.error.code, message: killed.error.message };
          await this.settle(id, ["stopping"], "failed", { lastError }, "stop failed");
          return;
        }
      }
    }
    if (await this.settle(id, ["stopping"], "stopped", { pid: null }, "VMM stopped")) log.info("machine stopped");
  }

  /** Removes a machine in `destroying`: its VMM, its run dir (disk included), its row. */
  async destroy(rec: MachineRecord, log: FastifyBaseLogger): Promise<void> {
    try {
      const m = this.live.take(rec.id);
      if (m) await m.kill();
      // A VMM the daemon lost track of (a boot cut short by a crash) would outlive its run dir.
      const strays = await this.o.vms.killVmmsOf(rec);
      if (strays.length > 0) log.warn({ pids: strays }, "killed a VMM no machine held");
      if (m) await m.destroy();
      await rm(rec.runDir, { recursive: true, force: true });
      await this.o.repo.delete(rec.id);
    } catch (e) {
      const he = toHyperfleetError(e);
      await this.settle(rec.id, ["destroying"], "failed", { lastError: { code: he.code, message: he.message } }, "delete failed");
      throw he;
    }
    this.bus.publish({ kind: "deleted", id: rec.id });
    log.info("machine deleted");
  }

  /** Takes charge of a VMM adopted from an earlier daemon whose agent answers: it is running. */
  async adoptRunning(rec: MachineRecord, m: Machine, log: FastifyBaseLogger): Promise<void> {
    this.live.set(rec.id, m);
    const running =
      rec.status === "running"
        ? await this.o.repo.update(rec.id, { pid: m.pid })
        : await this.settle(rec.id, [rec.status], "running", { pid: m.pid, lastError: null }, "adopted after daemon restart");
    if (running) this.watchExit(rec.id, m, log);
  }

  /** Notices a VMM that exits without being asked (killed, crashed, guest powered off). */
  private watchExit(id: string, m: Machine, log: FastifyBaseLogger): void {
    void m
      .exited()
      .then(async (st) => {
        // Not ours any more: a stop, restart or delete took the machine and handles its exit.
        if (!this.live.release(id, m)) return;
        await m.kill(); // releases sockets and the agent connection; the process is already gone
        const to = statusAfterUnexpectedExit(st.exitCode);
        const how = st.signal ? `signal ${st.signal}` : st.exitCode == null ? "unknown status" : `exit code ${st.exitCode}`;
        const lastError = to === "failed" ? { code: "VMM_EXITED", message: `the VMM process exited unexpectedly (${how})` } : null;
        if (await this.settle(id, ["running"], to, { pid: null, lastError }, `VMM exited (${how})`)) {
          log.warn({ status: to, how, detected_by: st.detectedBy }, "VMM exited on its own");
        }
      })
      .catch((e: unknown) => log.error({ err: e }, "exit watcher failed"));
  }
}
