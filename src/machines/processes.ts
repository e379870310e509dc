/**
 * Background processes (POST/GET /machines/:id/processes; docs/exec-stream.md, "Background
 * processes"; ADR 0012): detached execs of the guest agent, each with its own log under
 * PROCESS_DIR in the guest, and an index file there that says which pid is which command. All the
 * state is in the guest, so a daemon restart loses nothing, and a machine restart (a new boot,
 * /run is tmpfs) starts with no processes, as the processes themselves are gone.
 */
import { randomBytes } from "node:crypto";
import type { AgentClient } from "../agent/client.js";
import { HyperfleetError, isHyperfleetError } from "../core/errors.js";
import type { ProcessStartRequest, ProcessView } from "../core/ports/services.js";
import { parseMainStatus } from "../workload/run-spec.js";

export const PROCESS_DIR = "/run/hyperfleet/processes";
const INDEX_PATH = `${PROCESS_DIR}/index.jsonl`;
/** The index holds one short line per process started in this boot; a bigger one was not written by us. */
const INDEX_MAX_BYTES = 4 << 20;
const STATUS_MAX_BYTES = 4096;

interface IndexLine {
  tag: string;
  pid: number;
  command: string[];
  cwd?: string;
  user?: string;
  started_at: string;
}

export function processLogPath(tag: string): string {
  return `${PROCESS_DIR}/${tag}.log`;
}

/** The index's lines that parse; a torn or foreign line is skipped. Pure. */
export function parseIndex(text: string): IndexLine[] {
  const out: IndexLine[] = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    try {
      const v = JSON.parse(line) as Partial<IndexLine>;
      if (typeof v.tag === "string" && /^[0-9a-f]{16}$/.test(v.tag) && Number.isSafeInteger(v.pid) && Array.isArray(v.command)) out.push(v as IndexLine);
    } catch {
      // a line cut short by a crash mid-append
    }
  }
  return out;
}

async function readIndex(agent: AgentClient): Promise<IndexLine[]> {
  try {
    return parseIndex((await agent.readFile(INDEX_PATH, { maxBytes: INDEX_MAX_BYTES })).toString("utf8"));
  } catch (e) {
    if (isHyperfleetError(e, "FILE_NOT_FOUND")) return [];
    throw e;
  }
}

async function statusOf(agent: AgentClient, tag: string): Promise<ReturnType<typeof parseMainStatus>> {
  try {
    return parseMainStatus((await agent.readFile(`${processLogPath(tag)}.status`, { maxBytes: STATUS_MAX_BYTES })).toString("utf8"));
  } catch (e) {
    if (isHyperfleetError(e, "FILE_NOT_FOUND")) return null;
    throw e;
  }
}

function view(line: IndexLine, st: ReturnType<typeof parseMainStatus>): ProcessView {
  return {
    pid: line.pid,
    command: line.command,
    status: st?.status === "running" ? "running" : "exited",
    exitCode: st?.status === "exited" ? st.exitCode : null,
    signal: st?.status === "exited" ? st.signal : null,
    startedAt: line.started_at,
    exitedAt: st?.status === "exited" ? st.exitedAt : null,
  };
}

/**
 * Starts one: a detached exec (stdin /dev/null, stdout+stderr into its log), then its line in the
 * index. A daemon that dies between the two leaves the process running but unlisted.
 */
export async function startProcess(agent: AgentClient, req: ProcessStartRequest): Promise<ProcessView> {
  const tag = randomBytes(8).toString("hex");
  const { pid } = await agent.execDetached(req.command, {
    logPath: processLogPath(tag),
    ...(req.env !== undefined && { env: req.env }),
    ...(req.cwd !== undefined && { cwd: req.cwd }),
    ...(req.user !== undefined && { user: req.user }),
  });
  const line: IndexLine = { tag, pid, command: req.command, started_at: new Date().toISOString(), ...(req.cwd !== undefined && { cwd: req.cwd }), ...(req.user !== undefined && { user: req.user }) };
  // One small DATA frame is one O_APPEND write in the guest: concurrent starts do not interleave.
  await agent.writeFile(INDEX_PATH, Buffer.from(`${JSON.stringify(line)}\n`), { append: true, mkdirs: true });
  return view(line, { status: "running", pid, exitCode: null, signal: null, startedAt: line.started_at, exitedAt: null, error: null });
}

export async function listProcesses(agent: AgentClient): Promise<ProcessView[]> {
  const lines = await readIndex(agent);
  const out: ProcessView[] = [];
  for (const l of lines) out.push(view(l, await statusOf(agent, l.tag)));
  return out;
}

/** The process with this pid in this boot (the latest, should a pid have been reused); PROCESS_NOT_FOUND. */
export async function findProcess(agent: AgentClient, machineId: string, pid: number): Promise<{ view: ProcessView; logPath: string }> {
  const line = (await readIndex(agent)).filter((l) => l.pid === pid).at(-1);
  if (!line) throw new HyperfleetError("PROCESS_NOT_FOUND", `machine ${machineId} has no background process ${pid}; GET /machines/${machineId}/processes lists them`);
  return { view: view(line, await statusOf(agent, line.tag)), logPath: processLogPath(line.tag) };
}

/**
 * Sends a signal to a running process's group (it leads its own session). Detached execs take no
 * SIGNAL frames, so this runs `kill` in the guest: an image without one answers EXEC_NOT_FOUND.
 */
export async function signalProcess(agent: AgentClient, machineId: string, pid: number, signal: number): Promise<ProcessView> {
  const { view: v } = await findProcess(agent, machineId, pid);
  if (v.status !== "running") {
    throw new HyperfleetError("PROCESS_NOT_RUNNING", `background process ${pid} has exited; there is nothing to signal`, { details: { current_status: v.status } });
  }
  // No "--": busybox kill takes it for a pid; after the signal, -PID is a process group in both busybox and procps.
  const r = await agent.exec(["kill", `-${signal}`, `-${pid}`], { timeoutMs: 10_000, maxOutputBytes: 4096 });
  if (r.exitCode !== 0) {
    // It exited between the status read and the kill.
    const again = await findProcess(agent, machineId, pid);
    if (again.view.status !== "running") throw new HyperfleetError("PROCESS_NOT_RUNNING", `background process ${pid} has exited; there is nothing to signal`, { details: { current_status: "exited" } });
    throw new HyperfleetError("INTERNAL", `kill -${signal} -${pid} failed in the guest: ${r.stderr.toString("utf8").trim().slice(0, 200)}`);
  }
  return v;
}
