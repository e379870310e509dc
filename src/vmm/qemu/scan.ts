/**
 * Our QEMU processes in /proc (the shared scan: ../process-scan.ts). Every QEMU we start has
 * `-pidfile <runDir>/qemu.pid` on its command line, so /proc/<pid>/cmdline tells its run dir.
 */
import { readFile } from "node:fs/promises";
import { basename, dirname, resolve } from "node:path";
import { processScan } from "../process-scan.js";

export type { FoundVmm } from "../process-scan.js";

/** The run dir a QEMU command line points into, or null when it is not one of ours. Pure. */
export function runDirOfArgv(argv: readonly string[]): string | null {
  if (!basename(argv[0] ?? "").startsWith("qemu-system")) return null;
  const i = argv.indexOf("-pidfile");
  const pidFile = i >= 0 ? argv[i + 1] : undefined;
  if (!pidFile || basename(pidFile) !== "qemu.pid" || !pidFile.startsWith("/")) return null;
  return dirname(resolve(pidFile));
}

async function runDirOf(pid: number): Promise<string | null> {
  try {
    return runDirOfArgv((await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0"));
  } catch {
    return null; // exited meanwhile, or not ours to read
  }
}

const scan = processScan("QEMU", runDirOf);
export const findVmmsUnder = scan.findUnder;
export const findVmmsIn = scan.findIn;
export const killFoundVmm = scan.killFound;
export const killVmmsIn = scan.killIn;
