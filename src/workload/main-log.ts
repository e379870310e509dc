/**
 * The main process's log, read through the guest agent (READ with OFFSET; no process runs in the
 * guest for it). A follower polls: new bytes are sent as they land, and the stream ends once the
 * status file no longer says `running` (the process exited, or there is none) and everything up
 * to that point was sent, when the machine's agent connection goes away (stop, restart, crash),
 * or when the client leaves.
 */
import type { AgentClient } from "../agent/client.js";
import { isHyperfleetError } from "../core/errors.js";
import { sleep } from "../host/async.js";
import { MAIN_LOG_PATH, parseMainStatus, tailOffset } from "./run-spec.js";

/** How often a follower looks for new output. */
export const FOLLOW_INTERVAL_MS = 250;
/** Largest piece read per READ, so one poll never holds the agent channel for long. */
const READ_CHUNK = 1 << 20;
/** Most of the log one request returns: the guest rotates at 32 MiB, so only a tampered log is longer. */
export const MAX_LOG_READ = 32 << 20;
/** A status line is a few dozen bytes; a guest could point the file at something endless. */
const STATUS_MAX_BYTES = 4096;

/** Size of a guest file, or null when it does not exist. */
async function sizeOf(agent: AgentClient, path: string): Promise<number | null> {
  try {
    return (await agent.stat(path)).size;
  } catch (e) {
    if (isHyperfleetError(e, "FILE_NOT_FOUND")) return null;
    throw e;
  }
}

async function* readRange(agent: AgentClient, path: string, from: number, to: number): AsyncGenerator<Buffer> {
  for (let off = from; off < to; ) {
    const b = await agent.readFile(path, { offset: off, length: Math.min(READ_CHUNK, to - off) });
    if (b.length === 0) return; // shrank meanwhile (rotated): the caller notices on its next look
    off += b.length;
    yield b;
  }
}

/** Where output starts for `tail` lines: reads backwards in growing pieces until it has them. */
async function tailStart(agent: AgentClient, size: number, tail: number | undefined, logPath = MAIN_LOG_PATH): Promise<number> {
  if (tail === undefined) return 0;
  const floor = Math.max(0, size - MAX_LOG_READ);
  for (let want = 64 * 1024; ; want *= 4) {
    const from = Math.max(floor, size - want);
    const chunk = await collect(readRange(agent, logPath, from, size));
    const at = tailOffset(chunk, tail);
    if (at > 0 || from === floor) return from + at;
  }
}

async function collect(parts: AsyncIterable<Buffer>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const b of parts) out.push(b);
  return Buffer.concat(out);
}

/** True while the status file says the process runs (none at all: nothing more will come). */
async function mainRunning(agent: AgentClient, logPath: string): Promise<boolean> {
  try {
    return parseMainStatus((await agent.readFile(`${logPath}.status`, { maxBytes: STATUS_MAX_BYTES })).toString("utf8"))?.status === "running";
  } catch (e) {
    if (isHyperfleetError(e, "FILE_NOT_FOUND")) return false;
    throw e;
  }
}

/**
 * The log as it is now (its last `tail` lines); empty when nothing was logged yet. Read whole
 * (the guest rotates at 32 MiB; of a log made longer inside the guest, its last MAX_LOG_READ bytes)
 * so that a failure is still an HTTP error.
 */
export async function readMainLog(agent: AgentClient, tail?: number, logPath = MAIN_LOG_PATH): Promise<Buffer> {
  const size = (await sizeOf(agent, logPath)) ?? 0;
  const from = Math.max(await tailStart(agent, size, tail, logPath), size - MAX_LOG_READ);
  return collect(readRange(agent, logPath, from, size));
}

export interface FollowOptions {
  /** The machine's current agent connection; null or closed ends the stream. */
  agent: () => AgentClient | null;
  tail?: number;
  signal: AbortSignal;
  /** Another detached process's log (a background process); default the main process's. */
  logPath?: string;
  intervalMs?: number;
}

/**
 * Follows the log. Where to start is found before this resolves, so a failure there is still an
 * HTTP error; once streaming, an agent failure (the machine stopped) just ends the stream.
 */
export async function followMainLog(o: FollowOptions): Promise<AsyncIterable<Buffer>> {
  const agent = o.agent();
  if (!agent) return follow(null, 0, o);
  const logPath = o.logPath ?? MAIN_LOG_PATH;
  const offset = await tailStart(agent, (await sizeOf(agent, logPath)) ?? 0, o.tail, logPath);
  return follow(agent, offset, o);
}

async function* follow(first: AgentClient | null, from: number, o: FollowOptions): AsyncGenerator<Buffer> {
  if (!first) return;
  let offset = from;
  const logPath = o.logPath ?? MAIN_LOG_PATH;
  try {
    while (!o.signal.aborted) {
      const agent = o.agent();
      if (!agent || agent.closed || agent !== first) return;
      // Status before size: the guest records `exited` only after the last output is in the log.
      // No status file: the machine has no main process (no command, or it could not start).
      const running = await mainRunning(agent, logPath);
      const size = (await sizeOf(agent, logPath)) ?? 0;
      if (size < offset) {
        // Rotated at 32 MiB: what we had not read yet is at the end of <log>.1.
        const old = (await sizeOf(agent, `${logPath}.1`)) ?? 0;
        yield* readRange(agent, `${logPath}.1`, offset, old);
        offset = 0;
      }
      for await (const b of readRange(agent, logPath, offset, size)) {
        offset += b.length;
        yield b;
      }
      if (!running) return;
      await sleep(o.intervalMs ?? FOLLOW_INTERVAL_MS, o.signal);
    }
  } catch {
    // The machine stopped under us (AGENT_DISCONNECTED) or the guest refused a read: end the stream.
  }
}
