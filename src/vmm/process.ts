/**
 * Process helpers shared by VMM drivers: liveness checks that survive PID reuse and waiting for a
 * process we may not be the parent of (an adopted VMM).
 */
import { open, readFile, type FileHandle } from "node:fs/promises";
import { sleep } from "../host/async.js";

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
    await sleep(intervalMs, signal);
  }
}

/** Start time of `pid` in clock ticks since boot (field 22 of /proc/<pid>/stat), or null if it is gone. */
export async function startTimeOf(pid: number): Promise<string | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? null;
  } catch {
    return null;
  }
}

/**
 * The end of a log file, bounded (last `maxBytes`, at most `maxLines` lines), for error messages.
 * Empty when the file is missing or empty.
 */
export async function readLogTail(path: string, maxBytes = 2048, maxLines = 10): Promise<string> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(path, "r");
    const { size } = await fh.stat();
    const len = Math.min(size, maxBytes);
    const buf = Buffer.alloc(len);
    await fh.read(buf, 0, len, size - len);
    let text = buf.toString("utf8");
    // A cut at the front may split a line (or a UTF-8 sequence): drop the partial first line.
    if (size > len && text.includes("\n")) text = text.slice(text.indexOf("\n") + 1);
    return text.trim().split("\n").slice(-maxLines).join("\n");
  } catch {
    return "";
  } finally {
    await fh?.close();
  }
}
