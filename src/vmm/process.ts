/**
 * Process helpers shared by VMM drivers: liveness checks that survive PID reuse, waiting for a
 * process we may not be the parent of (an adopted VMM), and what both drivers do alike around a
 * spawn (the VMM's environment, its version line, its pidfile, meta.json written atomically).
 */
import { execFile } from "node:child_process";
import { renameSync, writeFileSync } from "node:fs";
import { open, readFile, type FileHandle } from "node:fs/promises";
import { promisify } from "node:util";
import { HyperfleetError } from "../core/errors.js";
import { sleep } from "../host/async.js";

const execFileP = promisify(execFile);

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

/** The whole environment a VMM gets: enough to run, nothing of the daemon's (secrets included). */
export function vmmEnv(): Record<string, string> {
  // eslint-disable-next-line no-restricted-properties -- the VMM inherits the host PATH and nothing else; not configuration
  return { PATH: process.env.PATH ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C.UTF-8" };
}

/** The first line of `<bin> --version` ("QEMU emulator version 7.2.x ...", "Firecracker v1.16.1"); `installHint` ends the error when it cannot run. */
export async function vmmVersionLine(bin: string, installHint: string): Promise<string> {
  try {
    const { stdout } = await execFileP(bin, ["--version"], { timeout: 10_000, env: vmmEnv() });
    return stdout.split("\n")[0]?.trim() ?? "";
  } catch (e) {
    throw new HyperfleetError("HOST_TOOL_MISSING", `cannot run ${bin} --version: ${(e as Error).message}; ${installHint}`, { cause: e });
  }
}

/** The pid a VMM's pidfile names, if it names one (> 1). */
export async function pidFromFile(file: string): Promise<number | undefined> {
  const pid = Number((await readFile(file, "utf8").catch(() => "")).trim());
  return Number.isInteger(pid) && pid > 1 ? pid : undefined;
}

/** Writes a run dir's meta.json whole or not at all (a temp file renamed over it). */
export function writeJsonSync(file: string, value: unknown): void {
  writeFileSync(file + ".tmp", JSON.stringify(value, null, 2));
  renameSync(file + ".tmp", file);
}
