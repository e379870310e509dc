/**
 * Image machines' main processes: started with a detached exec after every boot (not after a
 * daemon restart adopts a running VM: the process is still there), and observed through the
 * guest's status file. Their state is cached: set when the daemon starts the process, refreshed
 * by exec and log reads and by a slow watcher while it runs, so listing machines reads nothing
 * from any guest. A main process that cannot start does not fail the machine: the VM is up and
 * exec works, which is what one needs to find out why; the failure shows on the machine.
 */
import type { Logger } from "../core/ports/logger.js";
import { HyperfleetError, isHyperfleetError, toHyperfleetError } from "../core/errors.js";
import type { Vm } from "../vmm/vm.js";
import type { MainProcessState } from "../core/ports/services.js";
import type { MachineRecord } from "../core/machine.js";
import { execDefaults, MAIN_LOG_PATH, mainProcessSpec, parseMainStatus } from "./run-spec.js";
import { sleep, within } from "../host/async.js";
import { deliverSecretFiles } from "./secret-files.js";

/** Longest we wait for the guest to start the process or to return its status file. */
const AGENT_CALL_TIMEOUT_MS = 10_000;
const STATUS_READ_TIMEOUT_MS = 2_000;
/** A status line is a few dozen bytes; a guest could point the file at something endless. */
const STATUS_MAX_BYTES = 4096;

/** How often a running main process's status is looked at: soon after a change, then at most this rarely. */
const WATCH_FIRST_MS = 500;
const WATCH_MAX_MS = 5_000;

interface Entry {
  vm: Vm;
  /** Last known state; null: none recorded yet (not started, or the status file not read yet). */
  state: MainProcessState | null;
  /** Ends the watcher (a new boot, the machine deleted, the daemon closing). */
  ac: AbortController;
}

/** The machine's secrets in the clear, read when its main process starts (so every start has the current ones). */
export type SecretSource = (machineId: string) => Promise<Readonly<Record<string, string>>>;

export class MainProcesses {
  /** The main process of each machine whose VM we hold, as last seen. */
  private readonly entries = new Map<string, Entry>();

  /**
   * @param secrets read at every start of a main process.
   * @param onExit told once per process when it is first seen exited (the restart policy's cue;
   *   src/machines/supervisor.ts). Never throws.
   */
  constructor(
    private readonly secrets: SecretSource = () => Promise.resolve({}),
    private readonly onExit: (id: string, state: MainProcessState) => void = () => undefined,
  ) {}

  /**
   * Starts the machine's main process, if its image (or its overrides) name one. Never throws.
   * The machine's secrets go first to /run/secrets, then into the process's environment (over env
   * of the same name); exec'd commands never get them in theirs. A main process whose secrets
   * could not be read or written is not started (it would run without what it needs): it shows as
   * failed.
   */
  async start(rec: MachineRecord, vm: Vm, log: Logger): Promise<void> {
    this.forget(rec.id);
    let secrets: Readonly<Record<string, string>> = {};
    let undelivered: HyperfleetError | null;
    try {
      secrets = await this.secrets(rec.id);
      undelivered = await deliverSecretFiles(vm, rec, secrets, log);
    } catch (e) {
      undelivered = toHyperfleetError(e);
      log.error({ code: undelivered.code }, "the machine's secrets could not be read");
    }
    if (rec.imageRef === null) return;
    const spec = mainProcessSpec(rec);
    const agent = vm.agent;
    // Docker creates a WorkingDir the image does not have; without it every exec would fail.
    const cwd = execDefaults(rec).cwd;
    if (cwd !== undefined && agent) await within(agent.mkdir(cwd, { parents: true }), AGENT_CALL_TIMEOUT_MS, "AGENT_TIMEOUT", "creating the working directory").catch(() => undefined);
    if (spec === null) return;
    const entry = this.track(rec.id, vm);
    try {
      if (!agent) throw new HyperfleetError("AGENT_DISCONNECTED", "the guest agent connection closed right after the boot");
      if (undelivered) throw undelivered;
      const { pid } = await within(agent.execDetached(spec.argv, { env: { ...spec.env, ...secrets }, cwd: spec.cwd, user: spec.user, logPath: MAIN_LOG_PATH }), AGENT_CALL_TIMEOUT_MS, "AGENT_TIMEOUT", "starting the main process");
      log.info({ pid, argv0: spec.argv[0], args: spec.argv.length }, "main process started");
      entry.state = { status: "running", pid, exitCode: null, signal: null, startedAt: new Date().toISOString(), exitedAt: null, error: null };
      // The guest's own record (its start time) replaces ours; then a watcher notices the exit.
      await this.refresh(rec.id);
      void this.watch(rec.id, entry);
    } catch (e) {
      const he = toHyperfleetError(e);
      entry.state = { status: "failed", pid: null, exitCode: null, signal: null, startedAt: null, exitedAt: null, error: { code: he.code, message: he.message } };
      log.warn({ code: he.code, err: he }, "main process did not start; the machine runs without it");
    }
  }

  /** A running VM adopted after a daemon restart: its main process still runs (or ran); read its state once, then watch it. */
  async adopted(rec: MachineRecord, vm: Vm): Promise<void> {
    this.forget(rec.id);
    if (rec.imageRef === null || mainProcessSpec(rec) === null) return;
    const entry = this.track(rec.id, vm);
    await this.refresh(rec.id);
    void this.watch(rec.id, entry);
  }

  /**
   * The main process as last seen (no guest access: GET /machines lists many machines); null when
   * there is none, the machine is not running, or nothing was recorded yet.
   */
  state(rec: MachineRecord): MainProcessState | null {
    if (rec.imageRef === null || rec.status !== "running") return null;
    const e = this.entries.get(rec.id);
    if (!e || e.vm.agent === null) return null;
    return e.state;
  }

  /**
   * Reads the guest's status file into the cache (exec and log reads call it: the caller is
   * looking at the machine now). A guest that does not answer in time keeps what was known (it may
   * just be busy); a status file that is gone, unreadable or garbled shows as none. Never throws.
   */
  async refresh(id: string): Promise<void> {
    const e = this.entries.get(id);
    const agent = e?.vm.agent;
    if (!e || !agent || e.state?.status === "failed") return;
    let seen: MainProcessState | null;
    try {
      const text = await within(agent.readFile(`${MAIN_LOG_PATH}.status`, { maxBytes: STATUS_MAX_BYTES }), STATUS_READ_TIMEOUT_MS, "AGENT_TIMEOUT", "reading the main process status");
      seen = parseMainStatus(text.toString("utf8"));
    } catch (err) {
      if (isHyperfleetError(err, "AGENT_TIMEOUT") || isHyperfleetError(err, "AGENT_DISCONNECTED")) return;
      seen = null;
    }
    if (this.entries.get(id) !== e) return;
    const before = e.state;
    e.state = seen;
    if (seen?.status === "exited" && before?.status !== "exited") this.onExit(id, seen);
  }

  forget(id: string): void {
    this.entries.get(id)?.ac.abort();
    this.entries.delete(id);
  }

  /** Daemon shutdown: every watcher ends. */
  close(): void {
    for (const id of [...this.entries.keys()]) this.forget(id);
  }

  private track(id: string, vm: Vm): Entry {
    const entry: Entry = { vm, state: null, ac: new AbortController() };
    this.entries.set(id, entry);
    return entry;
  }

  /**
   * Looks at the status file while the process runs, rarely (one small READ every few seconds per
   * machine, however often machines are listed), until it exits or the VM goes.
   */
  private async watch(id: string, e: Entry): Promise<void> {
    for (let ms = WATCH_FIRST_MS; ; ms = Math.min(ms * 2, WATCH_MAX_MS)) {
      await sleep(ms, e.ac.signal);
      if (e.ac.signal.aborted || this.entries.get(id) !== e || e.vm.agent === null) return;
      await this.refresh(id);
      if (e.state !== null && e.state.status !== "running") return;
    }
  }
}
