/**
 * Finding VMM processes by where they live rather than by what we recorded: a daemon killed
 * between spawning a VMM and recording it leaves a process that no meta.json names. Each backend
 * says how a pid tells its run dir (QEMU: `-pidfile` on its command line; Firecracker: its working
 * directory); finding and killing are the same for both. Paths are compared exactly (never by
 * substring), and a kill re-checks the run dir and the start time first, so a reused pid is never hit.
 */
import { readdir } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { HyperfleetError } from "../core/errors.js";
import { sleep } from "../host/async.js";
import { isAlive, startTimeOf } from "./process.js";

export interface FoundVmm {
  pid: number;
  /** The VM's run dir, as the backend reads it from the process. */
  runDir: string;
  /** Clock ticks since boot: with the pid, identifies the process across pid reuse. */
  startTime: string;
}

export interface ProcessScan {
  /** Live VMMs whose run dir is directly under `base` (`<base>/<id>`). */
  findUnder(base: string): Promise<FoundVmm[]>;
  /** Live VMMs using exactly `runDir`. */
  findIn(runDir: string): Promise<FoundVmm[]>;
  /**
   * SIGKILLs a found VMM and waits until it is gone. False when it had already exited; a process
   * that is no longer the one found (pid reused) is left alone.
   */
  killFound(v: FoundVmm, timeoutMs?: number): Promise<boolean>;
  /** Ends every VMM still using `runDir`; their pids. */
  killIn(runDir: string): Promise<number[]>;
}

/** `runDirOf(pid)`: the run dir of a live process of this backend, else null (never throws). */
export function processScan(vmmName: string, runDirOf: (pid: number) => Promise<string | null>): ProcessScan {
  async function inspect(pid: number): Promise<FoundVmm | null> {
    const runDir = await runDirOf(pid);
    if (runDir === null || !(await isAlive(pid))) return null;
    const startTime = await startTimeOf(pid);
    return startTime === null ? null : { pid, runDir, startTime };
  }
  async function findUnder(base: string): Promise<FoundVmm[]> {
    const want = resolve(base);
    const found: FoundVmm[] = [];
    for (const entry of await readdir("/proc")) {
      if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
      const v = await inspect(Number(entry));
      if (v && dirname(v.runDir) === want) found.push(v);
    }
    return found;
  }
  async function findIn(runDir: string): Promise<FoundVmm[]> {
    const want = resolve(runDir);
    return (await findUnder(dirname(want))).filter((v) => v.runDir === want);
  }
  async function killFound(v: FoundVmm, timeoutMs = 10_000): Promise<boolean> {
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
      if (Date.now() > deadline) throw new HyperfleetError("VMM_CONTROL_FAILED", `${vmmName} pid ${v.pid} did not exit within ${timeoutMs} ms of SIGKILL`);
      await sleep(5);
    }
    return true;
  }
  async function killIn(runDir: string): Promise<number[]> {
    const killed: number[] = [];
    for (const v of await findIn(runDir)) if (await killFound(v)) killed.push(v.pid);
    return killed;
  }
  return { findUnder, findIn, killFound, killIn };
}
