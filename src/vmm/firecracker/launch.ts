/**
 * How a Firecracker process is started, pure: the command, its arguments and its working directory.
 * The driver spawns whatever a launcher returns, so the plain launch here and a jailer launch
 * (chroot, uid, cgroups: jailer.ts) are interchangeable without touching the driver.
 */
import type { VmSpec } from "../../core/ports/vmm-driver.js";

export interface FcLaunchInput {
  /** The firecracker binary (a path, or a name looked up on PATH). */
  bin: string;
  apiSocket: string;
  spec: VmSpec;
}

export interface FcLaunch {
  file: string;
  args: string[];
  /**
   * The process's working directory: the run dir. Drive paths inside it are given relative
   * (driver.ts, "Disks"), and the scan finds our processes by it (scan.ts).
   */
  cwd: string;
}

export type FcLauncher = (i: FcLaunchInput) => FcLaunch;

/**
 * Firecracker's `--id` is 1-64 characters of [A-Za-z0-9-] (its instance id check); our VM ids may
 * hold `_`. Only a label in Firecracker's logs, so a lossy mapping is harmless. Pure.
 */
export function firecrackerInstanceId(id: string): string {
  const s = id.replace(/[^A-Za-z0-9-]/g, "-").slice(0, 64);
  return s === "" ? "vm" : s;
}

/** `firecracker --api-sock <sock> --id <id>`, inside `nsenter --net=<netns>` (which execs it) when the VM has one. */
export const plainLaunch: FcLauncher = ({ bin, apiSocket, spec }) => {
  const argv = [bin, "--api-sock", apiSocket, "--id", firecrackerInstanceId(spec.id)];
  if (spec.netns === undefined) return { file: bin, args: argv.slice(1), cwd: spec.runDir };
  return { file: "nsenter", args: [`--net=${spec.netns}`, "--", ...argv], cwd: spec.runDir };
};
