/**
 * What an image machine runs, the way `docker run` and `docker exec` decide it (pure): the main
 * process's argv, environment, directory and user from the image config and the machine's
 * overrides, the defaults of an exec, and the guest's main-process status line.
 */
import type { MainProcessState } from "../core/ports/services.js";
import type { MachineRecord } from "../core/machine.js";

/** Docker's PATH for images that set none; without it an image with no Env could not find `sh`. */
export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** Where the guest agent appends the main process's output (status in `<path>.status`). */
export const MAIN_LOG_PATH = "/var/log/hyperfleet/main.log";

type RunFields = Pick<MachineRecord, "imageRef" | "imageConfig" | "env" | "cmd" | "entrypoint" | "workdir" | "user">;

export interface RunSpec {
  argv: string[];
  env: Record<string, string>;
  cwd?: string;
  user?: string;
}

/** Env, cwd and user every process of the machine starts with: image first, then the machine's. */
export function execDefaults(rec: RunFields): Omit<RunSpec, "argv"> {
  const img = rec.imageConfig;
  if (rec.imageRef === null || img === null) return { env: { ...rec.env } };
  const cwd = rec.workdir ?? img.workingDir;
  const user = rec.user ?? img.user;
  return {
    env: { PATH: DEFAULT_PATH, ...img.env, ...rec.env },
    ...(cwd !== null && { cwd }),
    ...(user !== null && { user }),
  };
}

/**
 * The main process: (entrypoint override ?? image Entrypoint) ++ (cmd override ?? image Cmd),
 * except that overriding the entrypoint also drops the image's Cmd (as `docker run --entrypoint`).
 * Null when the machine has no image config or the result is empty (nothing to run).
 *
 * @example mainProcessSpec({ ...rec, entrypoint: ["/bin/sh", "-c"], cmd: null }) // argv ["/bin/sh", "-c"]
 */
export function mainProcessSpec(rec: RunFields): RunSpec | null {
  const img = rec.imageConfig;
  if (rec.imageRef === null || img === null) return null;
  const entrypoint = rec.entrypoint ?? img.entrypoint;
  const cmd = rec.cmd ?? (rec.entrypoint !== null ? [] : img.cmd);
  const argv = [...entrypoint, ...cmd];
  if (argv.length === 0) return null;
  return { argv, ...execDefaults(rec) };
}

/**
 * Parses `<log>.status`: `running <pid> <start_ms>` or `exited <code> <signal> <end_ms>`
 * (docs/agent-protocol.md, "detached exec"). Null for anything else.
 */
export function parseMainStatus(text: string): MainProcessState | null {
  const parts = text.trim().split(/\s+/);
  const num = (i: number) => {
    const n = Number(parts[i]);
    return Number.isSafeInteger(n) ? n : null;
  };
  const time = (i: number) => {
    const ms = num(i);
    return ms === null ? null : new Date(ms).toISOString();
  };
  if (parts[0] === "running" && parts.length === 3 && num(1) !== null) {
    return { status: "running", pid: num(1), exitCode: null, signal: null, startedAt: time(2), exitedAt: null, error: null };
  }
  if (parts[0] === "exited" && parts.length === 4 && num(1) !== null && num(2) !== null) {
    const signal = num(2) || null;
    return { status: "exited", pid: null, exitCode: signal === null ? num(1) : null, signal, startedAt: null, exitedAt: time(3), error: null };
  }
  return null;
}

/** Byte offset where the last `n` lines of `buf` begin (a final line without newline counts). */
export function tailOffset(buf: Buffer, n: number): number {
  if (n <= 0) return buf.length;
  let end = buf.length;
  if (end > 0 && buf[end - 1] === 0x0a) end--;
  let seen = 0;
  for (let i = end - 1; i >= 0; i--) {
    if (buf[i] === 0x0a && ++seen === n) return i + 1;
  }
  return 0;
}
