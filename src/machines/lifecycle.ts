/**
 * What happens to a machine's VM, step by step, each step ending in a persisted status: boot
 * (-> running | failed), halt (-> stopped), destroy (-> row removed), watching for a VMM that exits
 * on its own (-> stopped | failed), adopting one left by an earlier daemon. The service decides
 * whether a user may ask for a step; reconciliation re-runs the same steps after a restart.
 */
import { rm } from "node:fs/promises";
import type { VmSnapshot } from "../core/ports/vmm-driver.js";
import { refreshGuest } from "./guest-identity.js";
import { freshSuspendDir, recordSuspended, removeSuspended, takeSuspended } from "./suspend-files.js";
import type { WarmTemplates } from "./templates.js";
import { snapshotFailure } from "./snapshots.js";
import type { AttachedNetwork } from "../core/ports/network.js";
import type { Logger } from "../core/ports/logger.js";
import { HyperfleetError, toHyperfleetError } from "../core/errors.js";
import { statusAfterUnexpectedExit, type MachineStatus } from "../core/machine-state.js";
import type { Vm } from "../vmm/vm.js";
import type { MachineRepository } from "../store/machine-repository.js";
import type { ErrorRef, MachinePatch, MachineRecord } from "../core/machine.js";
import { LiveVms } from "./live-vms.js";
import { Semaphore } from "../host/semaphore.js";
import type { StatusBus } from "./status-bus.js";
import type { MachineStatuses } from "./statuses.js";
import type { VmFactory } from "./vm-factory.js";
import type { MachineNetworks } from "./networks.js";
import { mountVolumes } from "./volumes.js";
import { execDefaults } from "../workload/run-spec.js";

/** What a boot does beyond starting the VM (image machines: pull first, main process after). */
export interface BootHooks {
  /** Before a boot slot is taken: returns the record to boot (its root disk ready). Throws to fail the boot. */
  prepare(rec: MachineRecord, signal: AbortSignal, log: Logger): Promise<MachineRecord>;
  /** Once the guest agent answered, before `running` is recorded. Must not throw. */
  booted(rec: MachineRecord, vm: Vm, log: Logger): Promise<void>;
  /** A running VM was adopted after a daemon restart. Must not throw. */
  adopted(rec: MachineRecord, vm: Vm, log: Logger): Promise<void>;
}

export interface VmLifecycleOptions {
  repo: MachineRepository;
  statuses: MachineStatuses;
  vms: VmFactory;
  networks: MachineNetworks;
  stopTimeoutMs: number;
  /** How many VMs may boot at the same time; more wait in `starting`. */
  maxConcurrentBoots: number;
  /**
   * How many VMs may be restored from a snapshot (a clone, a warm template, a suspend) at the same
   * time, in slots of their own: a restore is mostly waiting (QEMU's start, QMP, the agent), so it
   * must neither queue behind a cold boot nor hold one up. Default: maxConcurrentBoots.
   */
  maxConcurrentRestores?: number;
  hooks?: BootHooks;
  /** The snapshot a machine created from one restores (its record's `snapshotId`). */
  snapshotOf: (snapshotId: string) => Promise<VmSnapshot>;
  /** Warm image templates; absent: HYPERFLEET_WARM_TEMPLATES=off. */
  templates?: WarmTemplates;
}

export class VmLifecycle {
  readonly live = new LiveVms();
  private readonly bootSlots: Semaphore;
  private readonly restoreSlots: Semaphore;

  constructor(private readonly o: VmLifecycleOptions) {
    this.bootSlots = new Semaphore(o.maxConcurrentBoots);
    this.restoreSlots = new Semaphore(o.maxConcurrentRestores ?? o.maxConcurrentBoots);
  }

  get bus(): StatusBus {
    return this.o.statuses.bus;
  }

  /** A status change (MachineStatuses.settle: may lose to a concurrent one, a start may be refused). */
  settle(id: string, from: readonly MachineStatus[], to: MachineStatus, patch: MachinePatch, reason: string): Promise<MachineRecord | undefined> {
    return this.o.statuses.settle(id, from, to, patch, reason);
  }

  /**
   * Boots a machine in `starting`, or restores it when its record says so (a machine created from
   * a snapshot, a suspended one); ends in `running`, or `failed` with the reason recorded.
   */
  async boot(starting: MachineRecord, log: Logger): Promise<void> {
    const id = starting.id;
    const ac = this.live.beginBoot(id);
    const t0 = Date.now();
    let rec = starting;
    let vm: Vm;
    let release: (() => void) | undefined;
    const restoring = rec.restoreFrom;
    try {
      // An image pull may take minutes: it must not hold a boot slot meanwhile. A restored
      // machine's disk already exists (over its snapshot's, or its own).
      if (this.o.hooks && restoring === null) rec = await this.o.hooks.prepare(rec, ac.signal, log);
      const templates = this.o.templates?.eligible(rec) ? this.o.templates : undefined;
      const template = await templates?.claim(rec, log);
      const from = template?.vm ?? (await this.restorePoint(rec, log));
      release = await (from === null ? this.bootSlots : this.restoreSlots).acquire(ac.signal);
      const net = await this.o.networks.attach(rec);
      // A failed boot leaves nothing running (Vm.boot and Vm.restore undo their own steps).
      vm = from === null ? await this.o.vms.boot(rec, net, ac.signal) : await this.restoreOrBootCold(rec, from, template !== undefined, net, ac.signal, log);
      // Held from here on: a stop or delete queued behind this boot takes it over.
      this.live.set(id, vm);
      // A restored guest has its volumes mounted in the memory it came back with.
      if (from === null && rec.volumes.length > 0) await this.mountVolumes(vm, rec);
      if (from !== null && template === undefined) await this.wake(vm, rec, restoring === "snapshot" ? "clone" : "restore");
      // Before the main process starts: what the image's boot wrote and nothing else.
      else if (from === null && templates) await templates.capture(rec, vm, log);
    } catch (e) {
      const he = toHyperfleetError(e);
      const lastError = { code: he.code, message: he.message };
      await this.releaseNetwork(id, log);
      const failed = await this.settle(id, ["starting"], "failed", { pid: null, lastError }, "boot failed");
      if (failed) log.warn({ err: he, code: he.code }, "machine failed to boot");
      else log.info("boot cancelled");
      return;
    } finally {
      release?.();
      this.live.endBoot(id, ac);
    }
    // A restored guest's main process is in the memory it came back with: looked at, not started.
    if (restoring === null) await this.o.hooks?.booted(rec, vm, log);
    else await this.o.hooks?.adopted(rec, vm, log);
    const running = await this.settle(id, ["starting"], "running", { pid: vm.pid, restoreFrom: null }, restoring === null ? "guest agent answered" : `restored from ${restoring}`);
    // When the settle lost, a stop or delete took over during the boot and owns the machine now.
    if (running) {
      log.info({ pid: vm.pid, boot_ms: Date.now() - t0, restored_from: restoring ?? undefined }, restoring === null ? "machine running" : "machine restored");
      if (restoring === "suspend") await removeSuspended(rec.runDir).catch(() => undefined);
      this.watchExit(id, vm, log);
    }
  }

  /**
   * Restores the VM from `from`; for a warm template (a cache, not something the user asked for),
   * a restore that fails falls back to a cold boot, and the machine no longer depends on it.
   */
  private async restoreOrBootCold(rec: MachineRecord, from: VmSnapshot, template: boolean, net: AttachedNetwork | null, signal: AbortSignal, log: Logger): Promise<Vm> {
    if (!template) return this.o.vms.restore(rec, from, net, signal);
    try {
      const vm = await this.o.vms.restore(rec, from, net, signal);
      await this.wake(vm, rec, "clone");
      log.info("restored from a warm template");
      return vm;
    } catch (e) {
      if (signal.aborted) throw e;
      log.warn({ err: toHyperfleetError(e) }, "restoring the warm template failed; booting cold");
      await this.o.vms.discardDisk(rec);
      await this.o.templates?.release(rec);
      // A cold boot after all: it waits for a boot slot like any (the restore slot is kept meanwhile).
      const bootSlot = await this.bootSlots.acquire(signal);
      try {
        return await this.o.vms.boot(rec, net, signal);
      } finally {
        bootSlot();
      }
    }
  }

  /** What the machine's boot restores; null: a cold boot. A suspend whose state is incomplete cannot be restored. */
  private async restorePoint(rec: MachineRecord, log: Logger): Promise<VmSnapshot | null> {
    if (rec.restoreFrom === "snapshot" && rec.snapshotId !== null) return this.o.snapshotOf(rec.snapshotId);
    if (rec.restoreFrom !== "suspend") return null;
    // Used once: from the moment the restored guest may run, its disk moves on and the saved
    // memory no longer matches it. A restore cut short (a crash, a failure) then boots afresh.
    const saved = await takeSuspended(rec.runDir);
    if (saved === null) log.warn("the machine's suspended state is gone (a restore of it was cut short); booting afresh");
    return saved;
  }

  /** Gives a restored guest the time, fresh entropy and (a clone) its own hostname; a failure fails the boot. */
  private async wake(vm: Vm, rec: MachineRecord, how: "clone" | "restore"): Promise<void> {
    const agent = vm.agent;
    if (agent === null) throw new HyperfleetError("AGENT_DISCONNECTED", `the agent of ${rec.id} hung up right after the restore`);
    try {
      await refreshGuest(agent, how, rec.id);
    } catch (e) {
      await forceKill(vm);
      this.live.release(rec.id, vm);
      throw e;
    }
  }

  /** Mounts the machine's volumes before its main process starts; a failure fails the boot. */
  private async mountVolumes(vm: Vm, rec: MachineRecord): Promise<void> {
    try {
      const agent = vm.agent;
      if (agent === null) throw new HyperfleetError("AGENT_DISCONNECTED", `the agent of ${rec.id} hung up before its volumes were mounted`);
      await mountVolumes(agent, rec.volumes, rec.vmm, execDefaults(rec).user ?? null);
    } catch (e) {
      await forceKill(vm);
      this.live.release(rec.id, vm);
      const he = toHyperfleetError(e);
      throw new HyperfleetError(he.code, `mounting the machine's volumes: ${he.message}`, { cause: e });
    }
  }

  /**
   * Saves a running or paused machine to `<runDir>/suspend` and ends its VMM; ends in `suspended`
   * (no process, its memory given back). Run in the machine's queue. If saving fails the VM goes
   * on as it was and the error is thrown.
   */
  async suspend(id: string, log: Logger): Promise<MachineRecord | undefined> {
    const vm = this.live.get(id);
    const rec = await this.o.repo.get(id);
    if (!vm || !rec) return undefined;
    const t0 = Date.now();
    const wasRunning = rec.status === "running";
    const dir = await freshSuspendDir(rec.runDir);
    try {
      await recordSuspended(await vm.handle.snapshot({ dir, purpose: "suspend" }));
    } catch (e) {
      await removeSuspended(rec.runDir).catch(() => undefined);
      if (wasRunning) await vm.handle.resume().catch(() => undefined);
      throw snapshotFailure(e, `suspending ${id}`);
    }
    const saved_ms = Date.now() - t0;
    // Ours to end: the exit watcher must not read this exit as a crash.
    this.live.take(id);
    await forceKill(vm);
    await this.releaseNetwork(id, log);
    const suspended = await this.settle(id, ["running", "paused"], "suspended", { pid: null, restoreFrom: "suspend" }, "suspend requested");
    if (suspended) log.info({ save_ms: saved_ms, suspend_ms: Date.now() - t0 }, "machine suspended");
    return suspended;
  }

  /** Stops the VMM of a machine in `stopping`: graceful first, kill as the last resort. */
  async halt(id: string, log: Logger): Promise<void> {
    const m = this.live.take(id);
    if (m) {
      try {
        await m.shutdown(this.o.stopTimeoutMs);
      } catch (e) {
        log.warn({ err: toHyperfleetError(e) }, "graceful stop failed; killing the VMM");
        try {
          await m.kill();
        } catch (k) {
          const he = toHyperfleetError(k);
          await this.settle(id, ["stopping"], "failed", { lastError: { code: he.code, message: he.message } }, "stop failed");
          return;
        }
      }
    }
    await this.releaseNetwork(id, log);
    if (await this.settle(id, ["stopping"], "stopped", { pid: null }, "VMM stopped")) log.info("machine stopped");
  }

  /** Removes a machine in `destroying`: its VMM, its run dir (disk included), its row. */
  async destroy(rec: MachineRecord, log: Logger): Promise<void> {
    try {
      const m = this.live.take(rec.id);
      // What the guest wrote to its volumes outlives the machine: a clean shutdown flushes the
      // guest's page cache and journal to them first (a kill would lose the last seconds of writes).
      if (m && rec.volumes.length > 0) await m.shutdown(this.o.stopTimeoutMs).catch(() => undefined);
      if (m) await forceKill(m);
      // A VMM the daemon lost track of (a boot cut short by a crash) would outlive its run dir.
      const strays = await this.o.vms.killVmmsIn(rec.runDir);
      if (strays.length > 0) log.warn({ pids: strays }, "killed a VMM no machine held");
      await this.o.networks.release(rec.id);
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

  /**
   * Freezes a running machine's guest; ends in `paused`. Run in the machine's queue, so it never
   * overlaps a boot or halt step; a stop recorded meanwhile wins (its halt resumes the guest).
   */
  async pause(id: string, log: Logger): Promise<MachineRecord | undefined> {
    const vm = this.live.get(id);
    if (!vm) return undefined;
    const t0 = Date.now();
    await vm.pause();
    const paused = await this.settle(id, ["running"], "paused", {}, "pause requested");
    if (paused) log.info({ pause_ms: Date.now() - t0 }, "machine paused");
    return paused;
  }

  /**
   * Lets a paused machine's guest run again and sets its clock (it stood still while paused);
   * ends in `running`. A VM adopted paused gets its agent connection, and its hooks, here.
   */
  async resume(id: string, log: Logger): Promise<MachineRecord | undefined> {
    const vm = this.live.get(id);
    if (!vm) return undefined;
    const t0 = Date.now();
    const adopted = vm.agent === null;
    await vm.resume(RESUME_AGENT_TIMEOUT_MS);
    const agent = vm.agent;
    if (agent) await refreshGuest(agent, "resume", id).catch((e: unknown) => log.warn({ err: toHyperfleetError(e) }, "could not set the guest clock after resume"));
    else log.warn("the guest agent did not answer after resume");
    const running = await this.settle(id, ["paused"], "running", { pid: vm.pid }, "resume requested");
    if (!running) return undefined;
    log.info({ resume_ms: Date.now() - t0 }, "machine resumed");
    if (adopted && agent) await this.o.hooks?.adopted(running, vm, log);
    return running;
  }

  /** Takes charge of a VMM adopted paused from an earlier daemon: it stays paused (its agent is connected on resume). */
  async adoptPaused(rec: MachineRecord, m: Vm, log: Logger): Promise<void> {
    const paused = await this.takeCharge(rec, m, "paused", "adopted paused after daemon restart");
    if (paused) this.watchExit(rec.id, m, log);
  }

  /** Takes charge of a VMM adopted from an earlier daemon whose agent answers: it is running. */
  async adoptRunning(rec: MachineRecord, m: Vm, log: Logger): Promise<void> {
    const running = await this.takeCharge(rec, m, "running", "adopted after daemon restart");
    if (!running) return;
    this.watchExit(rec.id, m, log);
    await this.o.hooks?.adopted(running, m, log);
  }

  /** Holds an adopted VMM and records it in `status` (the earlier daemon may have recorded another). */
  private async takeCharge(rec: MachineRecord, m: Vm, status: "running" | "paused", reason: string): Promise<MachineRecord | undefined> {
    this.live.set(rec.id, m);
    this.o.networks.adopted(rec);
    return rec.status === status
      ? this.o.repo.update(rec.id, { pid: m.pid })
      : this.settle(rec.id, [rec.status], status, { pid: m.pid, lastError: null }, reason);
  }

  /**
   * Takes the machine's network down once its VMM is gone. A failure is logged, not raised: the
   * VM is stopped either way, and the next start or daemon restart converges what is left.
   */
  private async releaseNetwork(id: string, log: Logger): Promise<void> {
    try {
      await this.o.networks.release(id);
    } catch (e) {
      log.warn({ err: toHyperfleetError(e) }, "could not take the machine's network down; the next start or restart retries");
    }
  }

  /** Notices a VMM that exits without being asked (killed, crashed, guest powered off). */
  private watchExit(id: string, m: Vm, log: Logger): void {
    void m
      .exited()
      .then(async (st) => {
        // Not ours any more: a stop, restart or delete took the machine and handles its exit.
        if (!this.live.release(id, m)) return;
        await forceKill(m); // releases sockets and the agent connection; the process is already gone
        await this.releaseNetwork(id, log);
        const to = statusAfterUnexpectedExit(st.exitCode);
        const how = st.signal ? `signal ${st.signal}` : st.exitCode == null ? "unknown status" : `exit code ${st.exitCode}`;
        const lastError: ErrorRef | null = to === "failed" ? { code: "VMM_EXITED", message: `the VMM process exited unexpectedly (${how})` } : null;
        if (await this.settle(id, ["running", "paused"], to, { pid: null, lastError }, `VMM exited (${how})`)) {
          log.warn({ status: to, how, detected_by: st.detectedBy }, "VMM exited on its own");
        }
      })
      .catch((e: unknown) => log.error({ err: e }, "exit watcher failed"));
  }
}

/** How long a resumed guest's agent has to answer (a VM adopted paused connects only now). */
const RESUME_AGENT_TIMEOUT_MS = 10_000;

/** Kills a VM whatever state it is in; what cannot be killed (already gone) is still released. */
export async function forceKill(vm: Vm): Promise<void> {
  await vm.kill().catch(() => vm.release());
}
