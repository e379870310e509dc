/**
 * Finds QEMU processes by where they live rather than by what we recorded: a daemon killed between
 * spawning a VMM and recording it leaves a QEMU that no meta.json names. Every QEMU we start has
 * `-pidfile <runDir>/qemu.pid` on its command line, so /proc/<pid>/cmdline tells its run dir. Paths
 * are compared exactly (never by substring), and a kill re-checks the command line and the start
 * time first, so a reused pid is never hit.
 */
import { readdir, readFile } from "node:fs/promises";
import { basename, dirname, resolve } from "node:path";
import { HyperfleetError } from "../../core/errors.js";
import { sleep } from "../../host/async.js";
import { isAlive, startTimeOf } from "../process.js";

export interface FoundVmm {
  pid: number;
  /** The run dir its -pidfile is in. */
  runDir: string;
  /** Clock ticks since boot: with the pid, identifies the process across pid reuse. */
  startTime: string;
}

/** The run dir a QEMU command line points into, or null when it is not one of ours. Pure. */
export function runDirOfArgv(argv: readonly string[]): string | null {
  if (!basename(argv[0] ?? "").startsWith("qemu-system")) return null;
  const i = argv.indexOf("-pidfile");
  const pidFile = i >= 0 ? argv[i + 1] : undefined;
  if (!pidFile || basename(pidFile) !== "qemu.pid" || !pidFile.startsWith("/")) return null;
  return dirname(resolve(pidFile));
}

async function inspect(pid: number): Promise<FoundVmm | null> {
  try {
    const argv = (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0");
    const runDir = runDirOfArgv(argv);
    if (runDir === null || !(await isAlive(pid))) return null;
    const startTime = await startTimeOf(pid);
    return startTime === null ? null : { pid, runDir, startTime };
  } catch {
    return null; // exited meanwhile, or not ours to read
  }
}

/** Live QEMU processes whose run dir is directly under `base` (`<base>/<id>/qemu.pid`). */
export async function findVmmsUnder(base: string): Promise<FoundVmm[]> {
  const want = resolve(base);
  const found: FoundVmm[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const v = await inspect(Number(entry));
    if (v && dirname(v.runDir) === want) found.push(v);
  }
  return found;
}

/** Live QEMU processes using exactly `runDir`. */
export async function findVmmsIn(runDir: string): Promise<FoundVmm[]> {
  const want = resolve(runDir);
  return (await findVmmsUnder(dirname(want))).filter((v) => v.runDir === want);
}

/**
 * SIGKILLs a found VMM and waits until it is gone. False when it had already exited; a process that
 * is no longer the one found (pid reused) is left alone.
 */
export async function killFoundVmm(v: FoundVmm, timeoutMs = 10_000): Promise<boolean> {
  const now = await inspect(v.pid);
  if (!now || now.runDir !== v.runDir || now.startTime !== v.startTime) return false;
  try {
    process.kill(v.pid, "SIGKILL");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ESRCH") return false;
    throw e;
  }
  const deadline = Date.now() + timeoutMs;
  // Not our child (its parent died): poll. SIGKILL ends it within milliseconds.
  while (await isAlive(v.pid)) {
    if (Date.now() > deadline) throw new HyperfleetError("VMM_CONTROL_FAILED", `QEMU pid ${v.pid} did not exit within ${timeoutMs} ms of SIGKILL`);
    await sleep(5);
  }
  return true;
}

/** Ends every QEMU still using `runDir`; returns their pids. */
export async function killVmmsIn(runDir: string): Promise<number[]> {
  const killed: number[] = [];
  for (const v of await findVmmsIn(runDir)) if (await killFoundVmm(v)) killed.push(v.pid);
  return killed;
}
