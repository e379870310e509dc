/** Machines over HTTP: create, read, lifecycle, wait, exec and logs. */
import { machinePath } from "./paths.js";
import { MACHINE_ID_PATTERN } from "../contract/common.js";
import type { ExecBody, ExecResponse } from "../contract/exec.js";
import type { AccessTokenJson, CreateMachineBody, MachineJson } from "../contract/machine.js";
import type { MachineEventJson } from "../contract/health.js";
import type { MachineStatus } from "../core/machine-state.js";
import { attempt, type Result } from "../core/result.js";
import { HyperfleetApiError } from "./errors.js";
import { openExecStream, type ExecStream, type ExecStreamOptions } from "./exec-stream.js";
import type { CallOptions, Transport } from "./transport.js";

/** Exec options as the API takes them (`timeout` in seconds, `max_output_bytes`, `encoding`, ...). */
export type ExecOptions = Omit<ExecBody, "command" | "cmd"> & CallOptions;

export interface WaitOptions extends CallOptions {
  /** Default `running`. */
  status?: MachineStatus;
}

export interface LogsOptions extends CallOptions {
  /** Only the last N lines. */
  tail?: number;
}

const ID = new RegExp(MACHINE_ID_PATTERN);
/** The daemon's longest wait per request (contract WaitQuery). */
const WAIT_SLICE_S = 30;
/** Beyond an exec's own timeout, for the daemon to answer (its EXEC_TIMEOUT included). */
const EXEC_MARGIN_MS = 30_000;


export class Machines {
  constructor(private readonly t: Transport) {}

  create(body: CreateMachineBody, o: CallOptions = {}): Promise<Result<MachineJson>> {
    return attempt(() => this.t.json<MachineJson>({ ...o, method: "POST", path: "/machines", body }));
  }

  get(id: string, o: CallOptions = {}): Promise<Result<MachineJson>> {
    return attempt(() => this.t.json<MachineJson>({ ...o, method: "GET", path: machinePath(id) }));
  }

  /** Every machine, or those in one of `status`. */
  list(filter: { status?: MachineStatus | readonly MachineStatus[] } & CallOptions = {}): Promise<Result<MachineJson[]>> {
    const { status, ...o } = filter;
    const q = status === undefined ? undefined : typeof status === "string" ? status : status.join(",");
    return attempt(() => this.t.json<MachineJson[]>({ ...o, method: "GET", path: "/machines", query: { status: q } }));
  }

  /** A machine by id, or by name (as the CLI takes either): MACHINE_NOT_FOUND when neither matches. */
  find(idOrName: string, o: CallOptions = {}): Promise<Result<MachineJson>> {
    return attempt(async () => {
      if (ID.test(idOrName)) return this.t.json<MachineJson>({ ...o, method: "GET", path: machinePath(idOrName) });
      const all = await this.t.json<MachineJson[]>({ ...o, method: "GET", path: "/machines" });
      const m = all.find((x) => x.name === idOrName);
      if (m === undefined) throw new HyperfleetApiError("MACHINE_NOT_FOUND", `no machine has the id or name '${idOrName}'`, { status: 404 });
      return m;
    });
  }

  /** Answers once the status changed (`starting`); `wait` for `running`. */
  start(id: string, o: CallOptions = {}): Promise<Result<MachineJson>> {
    return this.action(id, "start", o);
  }

  stop(id: string, o: CallOptions = {}): Promise<Result<MachineJson>> {
    return this.action(id, "stop", o);
  }

  restart(id: string, o: CallOptions = {}): Promise<Result<MachineJson>> {
    return this.action(id, "restart", o);
  }

  /** Answers once the machine is `paused`. */
  pause(id: string, o: CallOptions = {}): Promise<Result<MachineJson>> {
    return this.action(id, "pause", o);
  }

  /** Answers once the machine is `running` again (a suspended one restored). */
  resume(id: string, o: CallOptions = {}): Promise<Result<MachineJson>> {
    return this.action(id, "resume", { timeoutMs: 120_000, ...o });
  }

  /** Answers once the machine is `suspended` (memory saved to disk, VMM gone). */
  suspend(id: string, o: CallOptions = {}): Promise<Result<MachineJson>> {
    return this.action(id, "suspend", { timeoutMs: 120_000, ...o });
  }

  /** The machine's proxy access token (its private services need it); `rotate`: a new one replaces it. */
  token(id: string, opts: { rotate?: boolean } & CallOptions = {}): Promise<Result<string>> {
    const { rotate, ...o } = opts;
    return attempt(async () => {
      const r = await this.t.json<AccessTokenJson>({ ...o, method: rotate === true ? "POST" : "GET", path: machinePath(id, rotate === true ? "/token/rotate" : "/token") });
      return r.token;
    });
  }

  /** Kills the VM if it runs and removes the machine. */
  delete(id: string, o: CallOptions = {}): Promise<Result<void>> {
    return attempt(async () => {
      await this.t.request({ ...o, method: "DELETE", path: machinePath(id) });
    });
  }

  /**
   * Replaces the machine's secrets (names left out are removed): a running machine's /run/secrets
   * at once, its main process's environment at its next start. The answer names them, never a value.
   */
  setSecrets(id: string, secrets: Record<string, string>, o: CallOptions = {}): Promise<Result<MachineJson>> {
    return attempt(() => this.t.json<MachineJson>({ ...o, method: "PUT", path: machinePath(id, "/secrets"), body: { secrets } }));
  }

  /** `count` clones of a running machine from one snapshot of it, `starting`. */
  fork(id: string, opts: { count?: number } & CallOptions = {}): Promise<Result<MachineJson[]>> {
    const { count, ...o } = opts;
    return attempt(() => this.t.json<MachineJson[]>({ timeoutMs: 120_000, ...o, method: "POST", path: machinePath(id, "/fork"), body: { count: count ?? 1 } }));
  }

  /**
   * Resolves with the machine once it is in `status` (default `running`); WAIT_TIMEOUT after
   * `timeoutMs` (default 60 s, any length: the daemon's 30 s per request are chained), MACHINE_FAILED
   * when it failed instead of running.
   */
  wait(id: string, opts: WaitOptions = {}): Promise<Result<MachineJson>> {
    const { status = "running", timeoutMs = 60_000, signal } = opts;
    return attempt(async () => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const slice = Math.min(WAIT_SLICE_S, Math.max(0, (deadline - Date.now()) / 1000));
        try {
          return await this.t.json<MachineJson>({
            method: "GET",
            path: machinePath(id, "/wait"),
            query: { status, timeout: Math.round(slice * 1000) / 1000 },
            timeoutMs: slice * 1000 + EXEC_MARGIN_MS,
            ...(signal !== undefined && { signal }),
          });
        } catch (e) {
          if (!(e instanceof HyperfleetApiError && e.code === "WAIT_TIMEOUT" && Date.now() < deadline)) throw e;
        }
      }
    });
  }

  /** Runs `command` to its end; a non-zero exit is a result, not an error (EXEC_TIMEOUT is one). */
  exec(id: string, command: readonly string[], opts: ExecOptions = {}): Promise<Result<ExecResponse>> {
    const { signal, timeoutMs, ...body } = opts;
    const httpTimeout = timeoutMs ?? (body.timeout ?? 60) * 1000 + EXEC_MARGIN_MS;
    return attempt(() =>
      this.t.json<ExecResponse>({ method: "POST", path: machinePath(id, "/exec"), body: { ...body, command }, timeoutMs: httpTimeout, ...(signal !== undefined && { signal }) }),
    );
  }

  /** Restart and health events (the last 200), oldest first. */
  events(id: string, o: CallOptions = {}): Promise<Result<MachineEventJson[]>> {
    return attempt(() => this.t.json<MachineEventJson[]>({ ...o, method: "GET", path: machinePath(id, "/events") }));
  }

  /** The main process's output so far (stdout and stderr interleaved). */
  logs(id: string, opts: LogsOptions = {}): Promise<Result<Buffer>> {
    const { tail, ...o } = opts;
    return attempt(async () => (await this.t.request({ ...o, method: "GET", path: machinePath(id, "/logs"), query: { tail }, accept: "text/plain" })).body);
  }

  /**
   * The main process's output as it comes: the iteration ends when the process has exited and
   * everything was read, or the machine stops; break out of it (or abort `signal`) to stop early.
   * Errors before the first byte (MACHINE_NOT_RUNNING, ...) are this Result's; a connection lost
   * later throws from the iteration.
   */
  followLogs(id: string, opts: LogsOptions = {}): Promise<Result<AsyncIterableIterator<Buffer>>> {
    const { tail, ...o } = opts;
    return attempt(async () => (await this.t.open({ ...o, method: "GET", path: machinePath(id, "/logs"), query: { follow: true, tail }, accept: "text/plain" })).chunks);
  }

  /** A command with its stdin, stdout and stderr streamed, optionally on a PTY (`tty: {rows, cols}`). */
  execStream(id: string, command: string[], opts: ExecStreamOptions = {}): Promise<Result<ExecStream>> {
    return openExecStream(this.t, id, command, opts);
  }

  private action(id: string, action: string, o: CallOptions): Promise<Result<MachineJson>> {
    return attempt(() => this.t.json<MachineJson>({ ...o, method: "POST", path: machinePath(id, `/${action}`) }));
  }
}
