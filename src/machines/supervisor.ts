/**
 * Health checks and restart policies at run time (issue 14; the decisions are health-policy.ts's).
 * It watches every status change on the bus: a machine that starts running gets its checks
 * scheduled (one CheckScheduler for all machines); one that leaves `running` has them cancelled.
 * A machine that goes straight from running (or paused) to `failed` or `stopped` lost its VMM
 * without anyone asking (a user's stop, restart, suspend or delete always goes through another
 * status first): the policy may boot it again. A main process seen exited, and a check that makes
 * the machine unhealthy, may restart the main process (or the VM, when there is none). Every
 * restart, refusal at the limit and health change is an event in the store.
 */
import type { Logger } from "../core/ports/logger.js";
import type { MachineStatus } from "../core/machine-state.js";
import type { MachineRecord, MainProcessState } from "../core/machine.js";
import { toHyperfleetError } from "../core/errors.js";
import type { HealthCheckSpec, HealthState, RestartPolicy, Supervision, SupervisionView, WorkloadEvent } from "../core/health.js";
import type { SupervisionRepository } from "../store/supervision-repository.js";
import type { MachineRepository } from "../store/machine-repository.js";
import type { MachineChange } from "./status-bus.js";
import type { VmLifecycle } from "./lifecycle.js";
import type { MainProcesses } from "../workload/main-process.js";
import { mainProcessSpec } from "../workload/run-spec.js";
import { CheckScheduler } from "../workload/check-scheduler.js";
import { runProbe } from "../workload/health-probe.js";
import { initialHealth, nextHealth, restartDecision, streakAfterUptime, type Failure } from "../workload/health-policy.js";
import { sleep } from "../host/async.js";
import type { Vm } from "../vmm/vm.js";

/** At most this many checks run at once, across all machines. */
const MAX_CONCURRENT_CHECKS = 8;
/** How long a killed main process has to be seen exited before its replacement starts. */
const MAIN_KILL_WAIT_MS = 5_000;

const NO_POLICY: Supervision = { healthCheck: null, restartPolicy: { policy: "no", maxRestarts: null }, restartCount: 0, restartStreak: 0 };

export interface SupervisorOptions {
  repo: SupervisionRepository;
  machines: MachineRepository;
  lifecycle: VmLifecycle;
  main: MainProcesses;
  log: Logger;
  maxConcurrentChecks?: number;
}

export class Supervisor {
  private readonly settings = new Map<string, Supervision>();
  private readonly health = new Map<string, HealthState>();
  /** Last status seen of each machine: tells a VMM that died from a stop that was asked for. */
  private readonly lastStatus = new Map<string, MachineStatus>();
  /** When what the policy guards last (re)started: the run of failures ends after 10 min up. */
  private readonly upSince = new Map<string, number>();
  /** Pending restarts (their backoff timers; null while being decided); one per machine at most. */
  private readonly pending = new Map<string, NodeJS.Timeout | null>();
  /** Machines whose unhealthy main process is being killed: its exit is ours, not a new failure. */
  private readonly busy = new Set<string>();
  private readonly scheduler: CheckScheduler;
  private unsubscribe: (() => void) | null = null;
  private closed = false;

  constructor(private readonly o: SupervisorOptions) {
    this.scheduler = new CheckScheduler(o.maxConcurrentChecks ?? MAX_CONCURRENT_CHECKS, (id, signal) => this.check(id, signal));
  }

  /**
   * Loads every machine's settings and status, then follows the bus. Called before
   * reconciliation, so a machine it finds dead is restarted like one that died while we watched.
   */
  async open(): Promise<void> {
    for (const [id, s] of await this.o.repo.all()) this.settings.set(id, s);
    for (const rec of await this.o.machines.list()) this.lastStatus.set(rec.id, rec.status);
    this.unsubscribe = this.o.lifecycle.bus.subscribeAll((c) => this.onChange(c));
  }

  /** After reconciliation: machines adopted running get their checks (adoption records no new status). */
  async started(): Promise<void> {
    for (const rec of await this.o.machines.list({ status: ["running"] })) {
      this.lastStatus.set(rec.id, "running");
      if (!this.scheduler.has(rec.id)) this.beginRunning(rec);
    }
  }

  /** A new machine's settings, stored with it (they survive daemon restarts). */
  async register(id: string, healthCheck: HealthCheckSpec | null, restartPolicy: RestartPolicy): Promise<void> {
    await this.o.repo.insert(id, healthCheck, restartPolicy);
    this.settings.set(id, { healthCheck, restartPolicy, restartCount: 0, restartStreak: 0 });
  }

  view(rec: MachineRecord): SupervisionView {
    const s = this.settings.get(rec.id) ?? NO_POLICY;
    const health = rec.status === "running" ? (this.health.get(rec.id) ?? initialHealth(s.healthCheck)) : initialHealth(null);
    return { healthCheck: s.healthCheck, restartPolicy: s.restartPolicy, restartCount: s.restartCount, health };
  }

  events(id: string): Promise<WorkloadEvent[]> {
    return this.o.repo.events(id);
  }

  /** Daemon shutdown: no check and no pending restart outlives it. */
  close(): void {
    this.closed = true;
    this.unsubscribe?.();
    this.scheduler.close();
    for (const t of this.pending.values()) if (t) clearTimeout(t);
    this.pending.clear();
  }

  /** The main process was seen exited (MainProcesses' onExit). */
  mainExited(id: string, st: MainProcessState): void {
    // A stop or restart in progress ends the process too: that exit is not a failure.
    if (this.closed || this.lastStatus.get(id) !== "running") return;
    void this.onFailure(id, { kind: "main-exit", exitCode: st.exitCode, signal: st.signal }, "main_process");
  }

  // --- status changes ---

  private onChange(c: MachineChange): void {
    if (this.closed) return;
    if (c.kind === "deleted") {
      this.forget(c.id);
      return;
    }
    const rec = c.machine;
    const before = this.lastStatus.get(rec.id);
    this.lastStatus.set(rec.id, rec.status);
    if (rec.status === "running") {
      if (before !== "running") this.beginRunning(rec);
      return;
    }
    this.scheduler.cancel(rec.id);
    // Paused keeps its health (the guest is frozen, not ill); anything else starts over.
    if (rec.status !== "paused") this.health.delete(rec.id);
    const died = (before === "running" || before === "paused") && (rec.status === "failed" || rec.status === "stopped");
    if (died) {
      const failure: Failure = rec.status === "stopped" ? { kind: "poweroff" } : { kind: "vmm-exit", how: rec.lastError?.message ?? "unknown" };
      void this.onFailure(rec.id, failure, "vm");
    }
    // A user's stop or delete while a restart waited for its backoff: the user wins.
    if (rec.status === "stopping" || rec.status === "destroying") this.cancelPending(rec.id);
  }

  private beginRunning(rec: MachineRecord): void {
    this.upSince.set(rec.id, Date.now());
    const spec = this.settings.get(rec.id)?.healthCheck ?? null;
    if (!this.health.has(rec.id) || this.health.get(rec.id)?.status === "none") this.health.set(rec.id, initialHealth(spec));
    if (spec !== null) this.scheduler.schedule(rec.id, spec.intervalS * 1000);
  }

  private forget(id: string): void {
    this.scheduler.cancel(id);
    this.cancelPending(id);
    this.settings.delete(id);
    this.health.delete(id);
    this.lastStatus.delete(id);
    this.upSince.delete(id);
  }

  private cancelPending(id: string): void {
    const t = this.pending.get(id);
    if (t) clearTimeout(t);
    this.pending.delete(id);
  }

  // --- checks ---

  private async check(id: string, signal: AbortSignal): Promise<void> {
    const spec = this.settings.get(id)?.healthCheck;
    const vm = this.o.lifecycle.live.get(id);
    const rec = await this.o.machines.get(id).catch(() => undefined);
    if (!spec || !vm || rec?.status !== "running" || signal.aborted) return;
    const result = await runProbe(spec.probe, rec, vm, spec.timeoutS * 1000);
    // Cancelled meanwhile (a stop, a restart): this result is about a VM that is going.
    if (signal.aborted || this.o.lifecycle.live.get(id) !== vm) return;
    const prev = this.health.get(id) ?? initialHealth(spec);
    const next = nextHealth(prev, spec, result, new Date(), this.upSince.get(id) ?? Date.now());
    this.health.set(id, next);
    if (next.status === prev.status) return;
    const log = this.o.log.child({ machine_id: id });
    log.info({ from: prev.status, to: next.status, failing_streak: next.failingStreak, error: next.lastError ?? undefined }, "health changed");
    await this.event(id, { kind: "health", message: next.status === "unhealthy" ? `unhealthy after ${next.failingStreak} failed checks: ${next.lastError ?? ""}` : `${next.status} (was ${prev.status})`, target: null, attempt: null, backoffMs: null, health: next.status });
    if (next.status === "unhealthy") {
      const hasMain = rec.imageRef !== null && mainProcessSpec(rec) !== null;
      await this.onFailure(id, { kind: "unhealthy", error: next.lastError }, hasMain ? "main_process" : "vm");
    }
  }

  // --- restarts ---

  private async onFailure(id: string, failure: Failure, target: "main_process" | "vm"): Promise<void> {
    const s = this.settings.get(id);
    if (!s || this.closed || this.pending.has(id) || this.busy.has(id)) return;
    const log = this.o.log.child({ machine_id: id });
    const streak = streakAfterUptime(s.restartStreak, Date.now() - (this.upSince.get(id) ?? Date.now()));
    const d = restartDecision(s.restartPolicy, { restartStreak: streak }, failure);
    if (!d.restart) {
      if (d.limitReached) {
        log.warn({ why: d.why, max_restarts: s.restartPolicy.maxRestarts }, "restart limit reached; not restarting");
        await this.event(id, { kind: "restart_limit", message: `${d.why}; not restarted: ${s.restartPolicy.maxRestarts} restarts in a row already`, target, attempt: null, backoffMs: null, health: null });
      }
      return;
    }
    // Taken before the first await: a second failure reported meanwhile (the check and the exit
    // watcher seeing the same death) finds the restart already decided.
    this.pending.set(id, null);
    s.restartStreak = d.attempt;
    s.restartCount++;
    await this.o.repo.setCounters(id, s.restartCount, s.restartStreak).catch((e: unknown) => log.warn({ err: e }, "could not record the restart count"));
    const expect = await this.o.machines.get(id);
    // Gone, or a user's stop or delete came first (cancelPending dropped the reservation).
    if (!expect || !this.pending.has(id) || this.closed) {
      this.pending.delete(id);
      return;
    }
    log.warn({ why: d.why, attempt: d.attempt, backoff_ms: d.delayMs, target }, "restarting by policy");
    await this.event(id, { kind: "restart", message: `${d.why}; restarting the ${target === "vm" ? "VM" : "main process"} (attempt ${d.attempt}, after ${d.delayMs} ms)`, target, attempt: d.attempt, backoffMs: d.delayMs, health: null });
    if (!this.pending.has(id) || this.closed) return;
    const timer = setTimeout(() => {
      this.pending.delete(id);
      if (this.closed) return;
      this.o.lifecycle.live
        .enqueue(id, () => (target === "vm" ? this.restartVm(expect, log) : this.restartMain(expect, log)))
        .catch((e: unknown) => log.error({ err: toHyperfleetError(e) }, "policy restart failed"));
    }, d.delayMs);
    timer.unref();
    this.pending.set(id, timer);
  }

  /**
   * Boots the VM again, in the machine's queue. Only if nothing happened to the machine since the
   * decision (a user's start, stop or delete meanwhile wins): its status must not have changed.
   */
  private async restartVm(expect: MachineRecord, log: Logger): Promise<void> {
    const id = expect.id;
    const rec = await this.o.machines.get(id);
    if (!rec || rec.statusChangedAt !== expect.statusChangedAt || this.closed) return;
    const lc = this.o.lifecycle;
    if (rec.status === "running") {
      // Unhealthy without a main process: the whole VM is restarted, as a user's restart would.
      if (!(await lc.settle(id, ["running"], "stopping", {}, "restart policy: unhealthy"))) return;
      await lc.halt(id, log);
    } else if (rec.status !== "failed" && rec.status !== "stopped") {
      return;
    }
    const now = await this.o.machines.get(id);
    if (!now || (now.status !== "failed" && now.status !== "stopped")) return;
    let starting: MachineRecord | undefined;
    try {
      starting = await lc.settle(id, [now.status], "starting", { lastError: null, pid: null }, "restart policy: booting again");
    } catch (e) {
      // No capacity: it stays down, saying why (the next failure, or a user's start, tries again).
      const he = toHyperfleetError(e);
      await this.event(id, { kind: "restart_limit", message: `could not boot again: ${he.message}`, target: "vm", attempt: null, backoffMs: null, health: null });
      return;
    }
    if (starting) await lc.boot(starting, log);
  }

  /**
   * Starts the main process again; one still running (unhealthy) is killed first. The guest agent
   * has no kill of its own for a detached process: `kill`, else the shell's builtin; an image with
   * neither (or a process that will not die) gets its whole VM restarted instead.
   */
  private async restartMain(expect: MachineRecord, log: Logger): Promise<void> {
    const id = expect.id;
    const vm = this.o.lifecycle.live.get(id);
    const rec = await this.o.machines.get(id);
    if (!vm || !rec || rec.status !== "running" || vm.agent === null || this.closed) return;
    const st = this.o.main.state(rec);
    if (st?.status === "running" && st.pid !== null) {
      this.busy.add(id);
      let gone: boolean;
      try {
        gone = await this.killMain(rec, vm.agent, st.pid);
      } finally {
        this.busy.delete(id);
      }
      if (!gone) {
        log.warn({ pid: st.pid }, "the unhealthy main process could not be killed; restarting the VM");
        await this.restartVm(rec, log);
        return;
      }
    }
    await this.o.main.start(rec, vm, log);
    this.upSince.set(id, Date.now());
    const spec = this.settings.get(id)?.healthCheck ?? null;
    if (spec !== null) {
      this.health.set(id, initialHealth(spec));
      this.scheduler.schedule(id, spec.intervalS * 1000);
    }
  }

  /** SIGKILLs the main process's group; true once the guest recorded its exit (the new one may then use the log). */
  private async killMain(rec: MachineRecord, agent: NonNullable<Vm["agent"]>, pid: number): Promise<boolean> {
    const opts = { timeoutMs: 5_000, maxOutputBytes: 1024 };
    for (const argv of [["kill", "-9", `-${pid}`], ["/bin/sh", "-c", `kill -9 -${pid}`]]) {
      const r = await agent.exec(argv, opts).catch(() => null);
      if (r?.exitCode === 0) break;
    }
    for (let waited = 0; waited < MAIN_KILL_WAIT_MS; waited += 250) {
      await this.o.main.refresh(rec.id);
      if (this.o.main.state(rec)?.status !== "running") return true;
      await sleep(250);
    }
    return false;
  }

  private async event(id: string, e: Omit<WorkloadEvent, "at">): Promise<void> {
    await this.o.repo.addEvent(id, { ...e, at: new Date().toISOString() }).catch((err: unknown) => this.o.log.warn({ err, machine_id: id }, "could not record an event"));
  }
}
