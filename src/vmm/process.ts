/**
 * Process helpers shared by VMM drivers: liveness checks that survive PID reuse and waiting for a
 * process we may not be the parent of (an adopted VMM).
 */
import { readFile } from "node:fs/promises";

/** True while `pid` exists and is not a zombie. */
export async function isAlive(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    // Field 3 (after the parenthesised comm, which may contain spaces) is the state.
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** True when `pid` is alive and its command line contains `marker` (guards against PID reuse). */
export async function isOurProcess(pid: number, marker: string): Promise<boolean> {
  if (!(await isAlive(pid))) return false;
  try {
    const cmdline = (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0");
    return cmdline.some((a) => a.includes(marker));
  } catch {
    return false;
  }
}

/** Polls until `pid` is gone. Used for processes we did not spawn (no 'exit' event). */
export async function waitForExit(pid: number, intervalMs = 100, signal?: AbortSignal): Promise<void> {
  while (await isAlive(pid)) {
    if (signal?.aborted) return;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
