/**
 * Our Firecracker processes in /proc (the shared scan: ../process-scan.ts), as qemu/scan.ts finds
 * QEMU's. Every Firecracker we start runs with its run dir as working directory (drive paths
 * resolve against it: driver.ts), so /proc/<pid>/cwd tells its run dir whatever socket paths the
 * caller chose; `--api-sock` on the command line tells a Firecracker from anything else that
 * happens to sit in that directory.
 */
import { readFile, readlink, stat } from "node:fs/promises";
import { resolve } from "node:path";
import { isAlive } from "../process.js";
import { processScan } from "../process-scan.js";

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

/**
 * True when `pid` is a live Firecracker whose root is the jail root `root`. A jailed Firecracker
 * runs pivoted into its jail in a mount namespace of its own, so /proc/<pid>/cwd and root read "/"
 * from here; stat through /proc/<pid>/root reaches the directory itself, compared by device and inode.
 */
export async function isFirecrackerInJail(pid: number, root: string): Promise<boolean> {
  try {
    if (!isFirecrackerArgv((await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0"))) return false;
    const [theirs, jail] = await Promise.all([stat(`/proc/${pid}/root`), stat(root)]);
    return theirs.dev === jail.dev && theirs.ino === jail.ino && (await isAlive(pid));
  } catch {
    return false;
  }
}

const scan = processScan("Firecracker", firecrackerRunDir);
export const findFirecrackersUnder = scan.findUnder;
export const findFirecrackersIn = scan.findIn;
export const killFoundFirecracker = scan.killFound;
export const killFirecrackersIn = scan.killIn;
