/**
 * Finds Firecracker processes by where they live, as qemu/scan.ts does for QEMU: a daemon killed
 * between spawning a VMM and recording it leaves a process no meta.json names. Every Firecracker we
 * start runs with its run dir as working directory (drive paths resolve against it: driver.ts), so
 * /proc/<pid>/cwd tells its run dir whatever socket paths the caller chose; `--api-sock` on the
 * command line tells a Firecracker from anything else that happens to sit in that directory. Paths
 * are compared exactly, and a kill re-checks the process and its start time, so a reused pid is
 * never hit.
 */
import { readdir, readFile, readlink } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { HyperfleetError } from "../../core/errors.js";
import { sleep } from "../../host/async.js";
import { isAlive, startTimeOf } from "../process.js";
import type { FoundVmm } from "../qemu/scan.js";

/** True for a Firecracker command line (`firecracker --api-sock <path> ...`, or our stand-in's). Pure. */
export function isFirecrackerArgv(argv: readonly string[]): boolean {
  return argv.includes("--api-sock");
}

/** The run dir of `pid` when it is a live Firecracker, else null. */
export async function firecrackerRunDir(pid: number): Promise<string | null> {
  try {
    const argv = (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0");
    if (!isFirecrackerArgv(argv)) return null;
    // " (deleted)" when the run dir was removed under it: no longer anybody's run dir.
    const cwd = await readlink(`/proc/${pid}/cwd`);
    return cwd.startsWith("/") && !cwd.endsWith(" (deleted)") ? resolve(cwd) : null;
  } catch {
    return null; // exited meanwhile, or not ours to read
  }
}

async function inspect(pid: number): Promise<FoundVmm | null> {
  const runDir = await firecrackerRunDir(pid);
  if (runDir === null || !(await isAlive(pid))) return null;
  const startTime = await startTimeOf(pid);
  return startTime === null ? null : { pid, runDir, startTime };
}

/** Live Firecracker processes whose run dir is directly under `base`. */
export async function findFirecrackersUnder(base: string): Promise<FoundVmm[]> {
  const want = resolve(base);
  const found: FoundVmm[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const v = await inspect(Number(entry));
    if (v && dirname(v.runDir) === want) found.push(v);
  }
  return found;
}

/** Live Firecracker processes using exactly `runDir`. */
export async function findFirecrackersIn(runDir: string): Promise<FoundVmm[]> {
  const want = resolve(runDir);
  return (await findFirecrackersUnder(dirname(want))).filter((v) => v.runDir === want);
}

/** SIGKILLs a found Firecracker and waits until it is gone; false when it was no longer that process. */
export async function killFoundFirecracker(v: FoundVmm, timeoutMs = 10_000): Promise<boolean> {
  const now = await inspect(v.pid);
  if (!now || now.runDir !== v.runDir || now.startTime !== v.startTime) return false;
  try {
    process.kill(v.pid, "SIGKILL");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ESRCH") return false;
    throw e;
  }
  const deadline = Date.now() + timeoutMs;
  while (await isAlive(v.pid)) {
    if (Date.now() > deadline) throw new HyperfleetError("VMM_CONTROL_FAILED", `Firecracker pid ${v.pid} did not exit within ${timeoutMs} ms of SIGKILL`);
    await sleep(5);
  }
  return true;
}

/** Ends every Firecracker still using `runDir`; returns their pids. */
export async function killFirecrackersIn(runDir: string): Promise<number[]> {
  const killed: number[] = [];
  for (const v of await findFirecrackersIn(runDir)) if (await killFoundFirecracker(v)) killed.push(v.pid);
  return killed;
}
