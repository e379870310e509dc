/**
 * Exec, file transfer and the main process's log on a running machine. Every call is bounded in
 * time: exec by its own timeout (enforced in the guest) plus a grace period on the host, file
 * operations and log reads by HYPERFLEET_FILE_TRANSFER_TIMEOUT; a log follower by the client
 * staying. Exec, upload and download are also cancelled in the guest when the host stops waiting
 * (deadline, client gone, shutdown), and what they buffer is bounded in size: exec output by the
 * request's maxOutputBytes, a download by maxSize whatever stat says (/proc files report 0).
 * An image machine's exec starts from the image's Env, WorkingDir and User (as `docker exec`).
 */
import type { AgentClient } from "../agent/client.js";
import { HyperfleetError, isHyperfleetError } from "../core/errors.js";
import type { Vm } from "../vmm/vm.js";
import type { ExecEncoding, ExecOutput, ExecRequest, ExecStreamHandle, ExecStreamRequest, FileStatView, LogsRequest, ProcessStartRequest, ProcessView } from "../core/ports/services.js";
import { findProcess, listProcesses, signalProcess, startProcess } from "./processes.js";
import type { MachineRecord } from "../core/machine.js";
import { followMainLog, readMainLog } from "../workload/main-log.js";
import { execDefaults } from "../workload/run-spec.js";
import { cancellable, within } from "../host/async.js";

/** How much longer than a command's own timeout we wait for the guest to report it. */
const EXEC_HOST_GRACE_MS = 10_000;

type Resolve = (id: string) => Promise<{ rec: MachineRecord; machine: Vm }>;

export class MachineIo {
  constructor(
    private readonly resolve: Resolve,
    private readonly fileTimeoutMs: number,
    /** The live Vm of `id` now (a follower ends when it is gone or replaced). */
    private readonly current: (id: string) => Vm | undefined,
  ) {}

  /** EXEC_TIMEOUT (504) carries the partial output in its details, encoded like a result. */
  async exec(id: string, req: ExecRequest, signal?: AbortSignal): Promise<ExecOutput> {
    const { rec, machine } = await this.resolve(id);
    const agent = requireAgent(id, machine);
    const d = execDefaults(rec);
    const cwd = req.cwd ?? d.cwd;
    const user = req.user ?? d.user;
    const r = await cancellable(
      (s) =>
        agent.exec(req.command, {
          env: { ...d.env, ...req.env },
          timeoutMs: req.timeoutMs,
          maxOutputBytes: req.maxOutputBytes,
          signal: s,
          ...(cwd !== undefined && { cwd }),
          ...(user !== undefined && { user }),
          ...(req.stdin !== undefined && { stdin: req.stdin }),
        }),
      req.timeoutMs + EXEC_HOST_GRACE_MS,
      "AGENT_TIMEOUT",
      "the guest agent's answer to exec",
      signal,
    );
    const out: ExecOutput = {
      exitCode: r.exitCode,
      signal: r.signal,
      stdout: encode(r.stdout, req.encoding),
      stderr: encode(r.stderr, req.encoding),
      stdoutTruncated: r.stdoutTruncated,
      stderrTruncated: r.stderrTruncated,
      durationMs: r.durationMs,
    };
    if (r.timedOut) {
      throw new HyperfleetError("EXEC_TIMEOUT", `'${req.command.join(" ").slice(0, 200)}' did not finish within ${req.timeoutMs} ms and was killed`, {
        details: { stdout: out.stdout, stderr: out.stderr, stdout_truncated: out.stdoutTruncated, stderr_truncated: out.stderrTruncated },
      });
    }
    return out;
  }

  /**
   * A streamed exec with the image's defaults, as exec(). Not bounded in time by the host: it
   * lasts as long as its process (or its timeoutMs) and ends when the agent connection does.
   */
  async execStream(id: string, req: ExecStreamRequest): Promise<ExecStreamHandle> {
    const { rec, machine } = await this.resolve(id);
    const agent = requireAgent(id, machine);
    const d = execDefaults(rec);
    const cwd = req.cwd ?? d.cwd;
    const user = req.user ?? d.user;
    return agent.execStream(req.command, {
      env: { ...d.env, ...req.env },
      stdin: req.stdin,
      onStdout: req.onStdout,
      onStderr: req.onStderr,
      ...(req.timeoutMs !== undefined && { timeoutMs: req.timeoutMs }),
      ...(req.tty !== undefined && { tty: req.tty }),
      ...(cwd !== undefined && { cwd }),
      ...(user !== undefined && { user }),
    });
  }

  async writeFile(id: string, path: string, data: Buffer, mode: number | undefined, signal?: AbortSignal): Promise<{ size: number }> {
    const { machine } = await this.resolve(id);
    // fsync: "uploaded" means on the guest's disk, not only in its page cache.
    const opts = mode === undefined ? { mkdirs: true, fsync: true } : { mkdirs: true, fsync: true, mode };
    const size = await cancellable((s) => requireAgent(id, machine).writeFile(path, data, { ...opts, signal: s }), this.fileTimeoutMs, "FILE_TRANSFER_TIMEOUT", `upload of ${path}`, signal);
    return { size };
  }

  /** FILE_TOO_LARGE past maxSize bytes: stat answers early, the guest's byte count has the last word. */
  async readFile(id: string, path: string, maxSize: number, signal?: AbortSignal): Promise<Buffer> {
    const { machine } = await this.resolve(id);
    const st = await this.statOf(id, machine, path);
    if (st.type === "directory") {
      throw new HyperfleetError("FILE_IS_DIRECTORY", `${path} is a directory; download files one by one`, { details: { field: "path" } });
    }
    if (st.size > maxSize) throw tooLarge(`${path} is ${st.size} bytes`, maxSize);
    try {
      return await cancellable(
        (s) => requireAgent(id, machine).readFile(path, { maxBytes: maxSize, signal: s }),
        this.fileTimeoutMs,
        "FILE_TRANSFER_TIMEOUT",
        `download of ${path}`,
        signal,
      );
    } catch (e) {
      if (isHyperfleetError(e, "FILE_TOO_LARGE")) throw tooLarge(`${path} has more than ${maxSize} bytes`, maxSize, e);
      throw e;
    }
  }

  async stat(id: string, path: string): Promise<FileStatView> {
    const { machine } = await this.resolve(id);
    return this.statOf(id, machine, path);
  }

  async remove(id: string, path: string, recursive: boolean): Promise<void> {
    const { machine } = await this.resolve(id);
    await within(requireAgent(id, machine).remove(path, { recursive }), this.fileTimeoutMs, "FILE_TRANSFER_TIMEOUT", `removal of ${path}`);
  }

  /** The main process's output (see main-log.ts); MACHINE_NOT_RUNNING unless running. */
  async logs(id: string, req: LogsRequest, signal: AbortSignal): Promise<Buffer | AsyncIterable<Buffer>> {
    const { machine } = await this.resolve(id);
    const agent = requireAgent(id, machine);
    if (!req.follow) return within(readMainLog(agent, req.tail), this.fileTimeoutMs, "FILE_TRANSFER_TIMEOUT", "reading the main process log");
    const live = () => (this.current(id) === machine ? machine.agent : null);
    return within(followMainLog({ agent: live, signal, ...(req.tail !== undefined && { tail: req.tail }) }), this.fileTimeoutMs, "FILE_TRANSFER_TIMEOUT", "reading the main process log");
  }

  /** A background process, with the image's defaults as exec(). */
  async startProcess(id: string, req: ProcessStartRequest): Promise<ProcessView> {
    const { rec, machine } = await this.resolve(id);
    const d = execDefaults(rec);
    const cwd = req.cwd ?? d.cwd;
    const user = req.user ?? d.user;
    const full: ProcessStartRequest = { command: req.command, env: { ...d.env, ...req.env }, ...(cwd !== undefined && { cwd }), ...(user !== undefined && { user }) };
    return within(startProcess(requireAgent(id, machine), full), this.fileTimeoutMs, "AGENT_TIMEOUT", "starting a background process");
  }

  async listProcesses(id: string): Promise<ProcessView[]> {
    const { machine } = await this.resolve(id);
    return within(listProcesses(requireAgent(id, machine)), this.fileTimeoutMs, "FILE_TRANSFER_TIMEOUT", "listing background processes");
  }

  async signalProcess(id: string, pid: number, signal: number): Promise<ProcessView> {
    const { machine } = await this.resolve(id);
    return within(signalProcess(requireAgent(id, machine), id, pid, signal), this.fileTimeoutMs, "AGENT_TIMEOUT", `signalling process ${pid}`);
  }

  /** A background process's output, like logs() for the main process. */
  async processOutput(id: string, pid: number, req: LogsRequest, signal: AbortSignal): Promise<Buffer | AsyncIterable<Buffer>> {
    const { machine } = await this.resolve(id);
    const agent = requireAgent(id, machine);
    const { logPath } = await within(findProcess(agent, id, pid), this.fileTimeoutMs, "FILE_TRANSFER_TIMEOUT", `finding process ${pid}`);
    if (!req.follow) return within(readMainLog(agent, req.tail, logPath), this.fileTimeoutMs, "FILE_TRANSFER_TIMEOUT", `reading the output of process ${pid}`);
    const live = () => (this.current(id) === machine ? machine.agent : null);
    return within(followMainLog({ agent: live, signal, logPath, ...(req.tail !== undefined && { tail: req.tail }) }), this.fileTimeoutMs, "FILE_TRANSFER_TIMEOUT", `reading the output of process ${pid}`);
  }

  private statOf(id: string, machine: Vm, path: string): Promise<FileStatView> {
    return within(requireAgent(id, machine).stat(path), this.fileTimeoutMs, "FILE_TRANSFER_TIMEOUT", `stat of ${path}`);
  }
}

function requireAgent(id: string, machine: Vm): AgentClient {
  const agent = machine.agent;
  if (!agent) throw new HyperfleetError("MACHINE_NOT_RUNNING", `machine ${id} has no agent connection right now; wait for 'running'`);
  return agent;
}

function encode(b: Buffer, encoding: ExecEncoding): string {
  return b.toString(encoding);
}

function tooLarge(what: string, maxSize: number, cause?: unknown): HyperfleetError {
  return new HyperfleetError("FILE_TOO_LARGE", `${what}; the limit is ${maxSize} (HYPERFLEET_FILE_MAX_SIZE)`, {
    details: { field: "path", limit: maxSize },
    ...(cause !== undefined && { cause }),
  });
}
