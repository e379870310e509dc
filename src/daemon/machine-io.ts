/**
 * Exec, file transfer and the main process's log on a running machine. Every call is bounded:
 * exec by its own timeout (enforced in the guest) plus a grace period on the host, file operations
 * and log reads by HYPERFLEET_FILE_TRANSFER_TIMEOUT; a log follower by the client staying.
 * An image machine's exec starts from the image's Env, WorkingDir and User (as `docker exec`).
 */
import { HyperfleetError, type ErrorCode } from "../core/errors.js";
import type { Result } from "../core/result.js";
import type { Machine } from "../lib/machine.js";
import type { ExecOutput, ExecRequest, FileStatView, LogsRequest } from "../api/service.js";
import type { MachineRecord } from "../store/records.js";
import { followMainLog, readMainLog } from "./main-log.js";
import { execDefaults } from "./run-spec.js";
import { within } from "./timeout.js";

/** How much longer than a command's own timeout we wait for the guest to report it. */
const EXEC_HOST_GRACE_MS = 10_000;

type Resolve = (id: string) => Promise<{ rec: MachineRecord; machine: Machine }>;

/** Unwraps `p`, failing with `code` if it has not settled after `ms`. The operation itself is not cancelled. */
export async function bounded<T>(p: Promise<Result<T>>, ms: number, code: ErrorCode, what: string): Promise<T> {
  return (await within(p, ms, code, what)).unwrap();
}

export class MachineIo {
  constructor(
    private readonly resolve: Resolve,
    private readonly fileTimeoutMs: number,
    /** The live Machine of `id` now (a follower ends when it is gone or replaced). */
    private readonly current: (id: string) => Machine | undefined,
  ) {}

  async exec(id: string, req: ExecRequest): Promise<ExecOutput> {
    const { rec, machine } = await this.resolve(id);
    const d = execDefaults(rec);
    const cwd = req.cwd ?? d.cwd;
    const user = req.user ?? d.user;
    const r = await bounded(
      machine.exec(req.command, {
        env: { ...d.env, ...req.env },
        timeoutMs: req.timeoutMs,
        ...(cwd !== undefined && { cwd }),
        ...(user !== undefined && { user }),
        ...(req.stdin !== undefined && { stdin: req.stdin }),
      }),
      req.timeoutMs + EXEC_HOST_GRACE_MS,
      "AGENT_TIMEOUT",
      "the guest agent's answer to exec",
    );
    return { exitCode: r.exitCode, signal: r.signal, stdout: r.stdout, stderr: r.stderr, durationMs: r.durationMs };
  }

  async writeFile(id: string, path: string, data: Buffer, mode: number | undefined): Promise<{ size: number }> {
    const { machine } = await this.resolve(id);
    // fsync: "uploaded" means on the guest's disk, not only in its page cache.
    const opts = mode === undefined ? { mkdirs: true, fsync: true } : { mkdirs: true, fsync: true, mode };
    return bounded(machine.writeFile(path, data, opts), this.fileTimeoutMs, "FILE_TRANSFER_TIMEOUT", `upload of ${path}`);
  }

  async readFile(id: string, path: string, maxSize: number): Promise<Buffer> {
    const { machine } = await this.resolve(id);
    const st = await this.statOf(machine, path);
    if (st.type === "directory") {
      throw new HyperfleetError("FILE_IS_DIRECTORY", `${path} is a directory; download files one by one`, { details: { field: "path" } });
    }
    if (st.size > maxSize) {
      throw new HyperfleetError("FILE_TOO_LARGE", `${path} is ${st.size} bytes; the limit is ${maxSize} (HYPERFLEET_FILE_MAX_SIZE)`, {
        details: { field: "path" },
      });
    }
    return bounded(machine.readFile(path), this.fileTimeoutMs, "FILE_TRANSFER_TIMEOUT", `download of ${path}`);
  }

  async stat(id: string, path: string): Promise<FileStatView> {
    const { machine } = await this.resolve(id);
    return this.statOf(machine, path);
  }

  async remove(id: string, path: string, recursive: boolean): Promise<void> {
    const { machine } = await this.resolve(id);
    await bounded(machine.remove(path, { recursive }), this.fileTimeoutMs, "FILE_TRANSFER_TIMEOUT", `removal of ${path}`);
  }

  /** The main process's output (see main-log.ts); MACHINE_NOT_RUNNING unless running. */
  async logs(id: string, req: LogsRequest, signal: AbortSignal): Promise<Buffer | AsyncIterable<Buffer>> {
    const { machine } = await this.resolve(id);
    const agent = machine.agentClient;
    if (!agent) throw new HyperfleetError("MACHINE_NOT_RUNNING", `machine ${id} has no agent connection right now; wait for 'running'`);
    if (!req.follow) return within(readMainLog(agent, req.tail), this.fileTimeoutMs, "FILE_TRANSFER_TIMEOUT", "reading the main process log");
    const live = () => (this.current(id) === machine ? machine.agentClient : null);
    return within(followMainLog({ agent: live, signal, ...(req.tail !== undefined && { tail: req.tail }) }), this.fileTimeoutMs, "FILE_TRANSFER_TIMEOUT", "reading the main process log");
  }

  private statOf(machine: Machine, path: string): Promise<FileStatView> {
    return bounded(machine.stat(path), this.fileTimeoutMs, "FILE_TRANSFER_TIMEOUT", `stat of ${path}`);
  }
}
