/**
 * Where the guest agent's socket goes. Beside the API socket (`<api-sock>.agent`), so it lives and
 * dies with the driver's run dir, unless that dir is one the agent, as PID 1 of its namespaces,
 * mounts over (/tmp, /run, /dev, /proc, /sys): a socket bound there would be invisible to us. Then
 * a directory in /var/tmp named by our PID (guestDirFor), reclaimed by the next stand-in once that
 * PID is gone (a SIGKILLed stand-in cannot remove it itself).
 */
import { mkdirSync, readdirSync, realpathSync, rmSync } from "node:fs";
import { basename, dirname, join } from "node:path";

const AGENT_MOUNTS = ["/tmp", "/run", "/dev", "/proc", "/sys"];
export const FALLBACK_DIR = "/var/tmp";
const FALLBACK_RE = /^hf-fc-standin-([0-9]+)$/;

/** The fallback directory of stand-in `pid` (what a test removes after SIGKILLing one). */
export const guestDirFor = (pid: number) => join(FALLBACK_DIR, `hf-fc-standin-${pid}`);
/** sun_path holds 108 bytes with the NUL. */
const MAX_SUN_PATH = 107;

export function agentSocketFor(apiSock: string, pid: number): string {
  let dir: string;
  try {
    dir = realpathSync(dirname(apiSock));
  } catch {
    dir = "/";
  }
  const hidden = AGENT_MOUNTS.some((m) => dir === m || dir.startsWith(`${m}/`));
  const beside = join(dir, `${basename(apiSock)}.agent`);
  return hidden || Buffer.byteLength(beside) > MAX_SUN_PATH ? join(guestDirFor(pid), "agent.sock") : beside;
}

/** Creates the fallback directory when the socket goes there (beside the API socket, it exists). */
export function prepareAgentSocket(path: string, pid: number): void {
  if (dirname(path) === guestDirFor(pid)) mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
}

/** Removes the agent socket, and the fallback directory with it. */
export function removeAgentSocket(path: string, pid: number): void {
  rmSync(dirname(path) === guestDirFor(pid) ? dirname(path) : path, { recursive: true, force: true });
}

/** Removes the fallback directories of stand-ins no longer running. */
export function reclaimStale(alive: (pid: number) => boolean): void {
  let names: string[];
  try {
    names = readdirSync(FALLBACK_DIR);
  } catch {
    return;
  }
  for (const n of names) {
    const m = FALLBACK_RE.exec(n);
    if (m && !alive(Number(m[1]))) rmSync(join(FALLBACK_DIR, n), { recursive: true, force: true });
  }
}
