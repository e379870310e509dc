/**
 * Machine lifecycle: the store holds the record (the truth about status), LiveVms holds the
 * library Machine of every VMM we control. Every status change is checked against the pure
 * transition table first and persisted with a conditional update, so concurrent requests get 409
 * instead of racing. Lifecycle calls return after the first status change; the slow part (boot,
 * graceful stop) runs in the machine's background queue and ends in a persisted status.
 */
import { rm } from "node:fs/promises";
import type { FastifyBaseLogger } from "fastify";
import { ulid } from "ulid";
import { HyperfleetError, toHyperfleetError } from "../core/errors.js";
import { checkAction, checkTransition, statusAfterUnexpectedExit, type MachineStatus } from "../core/machine-state.js";
import type { Machine } from "../lib/machine.js";
import type { CallContext, CreateMachineRequest, ExecOutput, ExecRequest, FileStatView, MachineServicePort } from "../api/service.js";
import type { MachinePatch, MachineRecord } from "../store/records.js";
import type { MachineRepository } from "../store/machine-repository.js";
import { LiveVms } from "./live-vms.js";
import { MachineIo } from "./machine-io.js";
import { StatusBus } from "./status-bus.js";
import type { BootPaths, VmFactory } from "./vm-factory.js";
import { waitForStatus } from "./wait.js";

export interface MachineServiceOptions {
  repo: MachineRepository;
  vms: VmFactory;
  log: FastifyBaseLogger;
  stopTimeoutMs: number;
  fileTransferTimeoutMs: number;
}

export function machineNotFound(id: string): HyperfleetError {
  return new HyperfleetError("MACHINE_NOT_FOUND", `machine ${id} does not exist; GET /machines lists the machines`);
}

export class MachineService implements MachineServicePort {
  readonly live = new LiveVms();
  readonly bus = new StatusBus();
  private readonly repo: MachineRepository;
  private readonly vms: VmFactory;
  private readonly log: FastifyBaseLogger;
  private readonly io: MachineIo;
  private readonly shutdown = new AbortController();

  constructor(private readonly o: MachineServiceOptions) {
    this.repo = o.repo;
    this.vms = o.vms;
    this.log = o.log;
    this.io = new MachineIo((id) => this.requireRunning(id), o.fileTransferTimeoutMs);
  }

  // --- reads ---

  list(filter: { status?: readonly MachineStatus[] }): Promise<MachineRecord[]> {
    return this.repo.list(filter);
  }

  async get(id: string): Promise<MachineRecord> {
    const rec = await this.repo.get(id);
    if (rec === undefined) throw machineNotFound(id);
    return rec;
  }

  wait(id: string, status: MachineStatus, timeoutMs: number, ctx: CallContext = {}): Promise<MachineRecord> {
    const signals = [this.shutdown.signal, ...(ctx.signal ? [ctx.signal] : [])];
    return waitForStatus({ bus: this.bus, get: (i) => this.get(i), id, status, timeoutMs, signal: AbortSignal.any(signals) });
  }

  // --- lifecycle ---

  async create(req: CreateMachineRequest, ctx: CallContext = {}): Promise<MachineRecord> {
    this.assertOpen();
    const id = `vm_${ulid()}`;
    // Resolved now so the record shows what it boots. Without guest assets a machine can still be
    // created (start then says what is missing), unless it is meant to start right away.
    let paths: BootPaths | null = null;
    try {
      paths = await this.vms.bootPaths();
    } catch (e) {
      if (req.start) throw e;
    }
    const rec = await this.repo.insert({
      id,
      name: req.name,
      vcpuCount: req.vcpuCount,
      memSizeMib: req.memSizeMib,
      imageRef: null,
      kernelImagePath: paths?.kernelImagePath ?? null,
      initrdPath: paths?.initrdPath ?? null,
      kernelArgs: paths?.kernelArgs ?? null,
      rootfsPath: paths?.rootfsPath ?? null,
      runDir: this.vms.runDirFor(id),
      network: null,
      env: req.env,
      metadata: req.metadata,
    });
    this.logFor(id, ctx).info({ name: req.name }, "machine created");
    return req.start ? this.start(id, ctx) : rec;
  }

  async start(id: string, ctx: CallContext = {}): Promise<MachineRecord> {
    this.assertOpen();
    const rec = await this.get(id);
    checkAction("start", rec.status).unwrap();
    const paths = rec.kernelImagePath !== null && rec.rootfsPath !== null ? {} : await this.vms.bootPaths();
    const starting = await this.move(rec, "starting", { ...paths, lastError: null, pid: null }, "start requested");
    const log = this.logFor(id, ctx);
    void this.live.enqueue(id, () => this.boot(starting, log));
    return starting;
  }

  async stop(id: string, ctx: CallContext = {}): Promise<MachineRecord> {
    this.assertOpen();
    const rec = await this.get(id);
    checkAction("stop", rec.status).unwrap();
    const stopping = await this.move(rec, "stopping", {}, "stop requested");
    const log = this.logFor(id, ctx);
    this.live.abortBoot(id);
    void this.live.enqueue(id, () => this.halt(id, log));
    return stopping;
  }

  async restart(id: string, ctx: CallContext = {}): Promise<MachineRecord> {
    this.assertOpen();
    const rec = await this.get(id);
    checkAction("restart", rec.status).unwrap();
    if (rec.status !== "running") return this.start(id, ctx);
    const stopping = await this.move(rec, "stopping", {}, "restart requested");
    const log = this.logFor(id, ctx);
    void this.live.enqueue(id, async () => {
      await this.halt(id, log);
      const starting = await this.settle(id, ["stopped"], "starting", { lastError: null }, "restart: booting again");
      if (starting) await this.boot(starting, log);
    });
    return stopping;
  }

  async delete(id: string, ctx: CallContext = {}): Promise<void> {
    this.assertOpen();
    const rec = await this.get(id);
    checkAction("delete", rec.status).unwrap();
    await this.move(rec, "destroying", {}, "delete requested");
    const log = this.logFor(id, ctx);
    this.live.abortBoot(id);
    await this.live.enqueue(id, async () => {
      try {
        const m = this.live.take(id);
        if (m) await m.destroy();
        else await rm(rec.runDir, { recursive: true, force: true });
        await this.repo.delete(id);
      } catch (e) {
        const he = toHyperfleetError(e);
        await this.settle(id, ["destroying"], "failed", { lastError: { code: he.code, message: he.message } }, "delete failed");
        throw he;
      }
      this.bus.publish({ kind: "deleted", id });
      log.info("machine deleted");
    });
  }

  // --- exec and files (delegated; they only need a running Machine) ---

  exec(id: string, req: ExecRequest): Promise<ExecOutput> {
    return this.io.exec(id, req);
  }
  writeFile(id: string, path: string, data: Buffer, mode: number | undefined): Promise<{ size: number }> {
    return this.io.writeFile(id, path, data, mode);
  }
  readFile(id: string, path: string, maxSize: number): Promise<Buffer> {
    return this.io.readFile(id, path, maxSize);
  }
  stat(id: string, path: string): Promise<FileStatView> {
    return this.io.stat(id, path);
  }
  removeFile(id: string, path: string, recursive: boolean): Promise<void> {
    return this.io.remove(id, path, recursive);
  }

  // --- used by reconciliation and shutdown ---

  /** Takes charge of a VMM adopted from an earlier daemon: it is running and answers. */
  async adoptRunning(rec: MachineRecord, m: Machine): Promise<void> {
    this.live.set(rec.id, m);
    const running =
      rec.status === "running"
        ? await this.repo.update(rec.id, { pid: m.pid })
        : await this.settle(rec.id, [rec.status], "running", { pid: m.pid, lastError: null }, "adopted after daemon restart");
    if (running) this.watchExit(running.id, m, this.log.child({ machine_id: rec.id }));
  }

  /** Settles a status change (no error when the machine moved on meanwhile) and tells waiters. */
  async settle(id: string, from: readonly MachineStatus[], to: MachineStatus, patch: MachinePatch, reason: string): Promise<MachineRecord | undefined> {
    const rec = await this.repo.transition(id, from, to, patch, reason);
    if (rec) this.bus.publish({ kind: "updated", machine: rec });
    return rec;
  }

  /**
   * Daemon shutdown: refuse new work, end pending waits, optionally stop every VM, then let go of
   * the VMs (they keep running) by closing agent connections.
   */
  async close(opts: { stopVms: boolean }): Promise<void> {
    this.shutdown.abort();
    if (opts.stopVms) {
      for (const [id, m] of this.live.all()) {
        const rec = await this.settle(id, ["running", "starting"], "stopping", {}, "daemon exiting");
        if (rec) await this.live.enqueue(id, () => this.halt(id, this.log.child({ machine_id: id })));
        else m.agentClient?.close();
      }
    }
    for (const [, m] of this.live.all()) m.agentClient?.close();
    this.bus.clear();
  }

  // --- internals ---

  private assertOpen(): void {
    if (this.shutdown.signal.aborted) throw new HyperfleetError("SHUTTING_DOWN", "the daemon is shutting down; retry when it is back");
  }

  private logFor(id: string, ctx: CallContext): FastifyBaseLogger {
    return ctx.log ?? this.log.child({ machine_id: id });
  }

  /** A user-requested status change; losing a race to another request is a 409 with the new status. */
  private async move(rec: MachineRecord, to: MachineStatus, patch: MachinePatch, reason: string): Promise<MachineRecord> {
    const moved = await this.settle(rec.id, [rec.status], to, patch, reason);
    if (moved) return moved;
    const now = await this.get(rec.id);
    checkTransition(now.status, to, reason.replace(/ requested$/, "")).unwrap();
    throw new HyperfleetError("INVALID_STATE_TRANSITION", `machine changed to '${now.status}' meanwhile; retry`, {
      details: { current_status: now.status },
    });
  }

  private async requireRunning(id: string): Promise<{ rec: MachineRecord; machine: Machine }> {
    const rec = await this.get(id);
    const machine = this.live.get(id);
    if (rec.status !== "running" || machine === undefined) {
      throw new HyperfleetError("MACHINE_NOT_RUNNING", `machine ${id} is '${rec.status}', not running; start it and wait for 'running'`, {
        details: { current_status: rec.status },
      });
    }
    return { rec, machine };
  }

  /** Boots a machine in `starting`; ends in `running`, or `failed` with the reason recorded. */
  private async boot(rec: MachineRecord, log: FastifyBaseLogger): Promise<void> {
    const id = rec.id;
    const ac = this.live.beginBoot(id);
    const t0 = Date.now();
    let machine: Machine | undefined;
    try {
      machine = await this.vms.create(rec);
      this.live.set(id, machine);
      (await machine.start({ signal: ac.signal })).unwrap();
    } catch (e) {
      const he = toHyperfleetError(e);
      if (machine && this.live.release(id, machine)) await machine.kill();
      const failed = await this.settle(id, ["starting"], "failed", { pid: null, lastError: { code: he.code, message: he.message } }, "boot failed");
      if (failed) log.warn({ err: he, code: he.code }, "machine failed to boot");
      else log.info("boot cancelled");
      return;
    } finally {
      this.live.endBoot(id, ac);
    }
    const running = await this.settle(id, ["starting"], "running", { pid: machine.pid }, "guest agent answered");
    // When the settle lost, a stop or delete took over during the boot and owns the machine now.
    if (running) {
      log.info({ pid: machine.pid, boot_ms: Date.now() - t0 }, "machine running");
      this.watchExit(id, machine, log);
    }
  }

  /** Stops the VMM of a machine in `stopping`: graceful first, kill as the last resort. */
  private async halt(id: string, log: FastifyBaseLogger): Promise<void> {
    const m = this.live.take(id);
    if (m) {
      const graceful = await m.shutdown({ timeoutMs: this.o.stopTimeoutMs });
      if (!graceful.ok) {
        log.warn({ err: graceful.error }, "graceful stop failed; killing the VMM");
        const killed = await m.kill();
        if (!killed.ok) {
          const e = killed.error;
          await this.settle(id, ["stopping"], "failed", { lastError: { code: e.code, message: e.message } }, "stop failed");
          return;
        }
      }
    }
    await this.settle(id, ["stopping"], "stopped", { pid: null }, "VMM stopped");
    log.info("machine stopped");
  }

  /** Notices a VMM that exits without being asked (killed, crashed, guest powered off). */
  private watchExit(id: string, m: Machine, log: FastifyBaseLogger): void {
    void m.exited().then(async (st) => {
      // Not ours any more: a stop, restart or delete took the machine and handles its exit.
      if (!this.live.release(id, m)) return;
      await m.kill(); // releases sockets and the agent connection; the process is already gone
      const to = statusAfterUnexpectedExit(st.exitCode);
      const how = st.signal ? `signal ${st.signal}` : st.exitCode == null ? "unknown status" : `exit code ${st.exitCode}`;
      const lastError = to === "failed" ? { code: "VMM_EXITED", message: `the VMM process exited unexpectedly (${how})` } : null;
      const rec = await this.settle(id, ["running"], to, { pid: null, lastError }, `VMM exited (${how})`);
      if (rec) log.warn({ status: to, how }, "VMM exited on its own");
    }).catch((e: unknown) => log.error({ err: e }, "exit watcher failed"));
  }
}
