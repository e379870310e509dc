/**
 * Per-VM writable disks. A qcow2 overlay on the shared read-only base costs ~10 ms and a few
 * hundred KiB, so creating ten VMs from one base does not copy it ten times.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { promisify } from "node:util";
import { HyperfleetError } from "../core/errors.js";

const run = promisify(execFile);

/** Creates `overlay` backed by the raw image `base`, unless it already exists. */
export async function createOverlay(base: string, overlay: string): Promise<void> {
  if (existsSync(overlay)) return;
  if (!existsSync(base)) throw new HyperfleetError("GUEST_ASSETS_MISSING", `root disk ${base} does not exist; run \`npm run setup\``);
  try {
    await run("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "raw", "-b", base, overlay]);
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === "ENOENT") throw new HyperfleetError("HOST_TOOL_MISSING", "qemu-img not found: run `npm run setup` (package qemu-utils)", { cause: e });
    throw new HyperfleetError("VMM_SPAWN_FAILED", `cannot create disk overlay ${overlay}: ${err.stderr ?? err.message}`, { cause: e });
  }
}
