/**
 * Disk providers (the DiskProvider port). QEMU: a qcow2 overlay on the shared read-only base
 * costs ~10 ms and a few hundred KiB, so creating ten VMs from one base does not copy it ten
 * times. Firecracker takes raw disks only: a copy, a reflink where the file system can, else a
 * sparse copy (disk-copy.ts), so a 512 MiB base with 27 MiB of data costs 27 MiB, not 512.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { copyFile, mkdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { HyperfleetError } from "../core/errors.js";
import type { DiskProvider } from "../core/ports/disk-provider.js";
import type { DiskSpec } from "../core/ports/vmm-driver.js";
import { copyDisk } from "./disk-copy.js";

const run = promisify(execFile);

function requireBase(base: string): void {
  if (!existsSync(base)) throw new HyperfleetError("GUEST_ASSETS_MISSING", `root disk ${base} does not exist; run \`npm run setup\``);
}

/** Creates `overlay` backed by the image `base` (raw, or a snapshot's frozen qcow2), unless it already exists. */
export async function createOverlay(base: string, overlay: string, baseFormat: "raw" | "qcow2" = "raw"): Promise<void> {
  if (existsSync(overlay)) return;
  requireBase(base);
  try {
    await run("qemu-img", ["create", "-q", "-f", "qcow2", "-F", baseFormat, "-b", base, overlay]);
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === "ENOENT") throw new HyperfleetError("HOST_TOOL_MISSING", "qemu-img not found: run `npm run setup` (package qemu-utils)", { cause: e });
    throw new HyperfleetError("VMM_SPAWN_FAILED", `cannot create disk overlay ${overlay}: ${err.stderr ?? err.message}`, { cause: e });
  }
}

const making = new Map<string, Promise<string>>();

/**
 * `<frozen>.blank-overlay`, made once (concurrent clones of one snapshot wait for the same one;
 * a unique temporary name keeps another process's attempt from mixing with ours).
 */
function blankOverlay(frozen: DiskSpec): Promise<string> {
  const blank = `${frozen.path}.blank-overlay`;
  if (existsSync(blank)) return Promise.resolve(blank);
  let p = making.get(blank);
  if (!p) {
    const tmp = `${blank}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
    p = createOverlay(frozen.path, tmp, frozen.format ?? "raw")
      .then(() => rename(tmp, blank))
      .then(() => blank)
      .finally(() => making.delete(blank));
    making.set(blank, p);
  }
  return p;
}

/** QEMU: `<runDir>/rootfs.qcow2` over the base, kept across stop and start. */
export const qcow2Overlays: DiskProvider = {
  format: "qcow2",
  async rootDisk(base: string, runDir: string): Promise<DiskSpec> {
    await mkdir(runDir, { recursive: true, mode: 0o700 });
    const path = join(runDir, "rootfs.qcow2");
    await createOverlay(base, path);
    return { path, format: "qcow2" };
  },
  async cloneDisk(frozen: DiskSpec, runDir: string): Promise<DiskSpec> {
    await mkdir(runDir, { recursive: true, mode: 0o700 });
    const path = join(runDir, "rootfs.qcow2");
    if (!existsSync(path)) {
      // An empty overlay names its backing file and nothing else of its VM: one made per frozen
      // disk is copied for each clone (a ~200 KiB copy instead of a qemu-img process, ~10 ms).
      const blank = await blankOverlay(frozen);
      await copyFile(blank, `${path}.tmp`);
      await rename(`${path}.tmp`, path);
    }
    return { path, format: "qcow2" };
  },
  removeDisk: (runDir: string) => rm(join(runDir, "rootfs.qcow2"), { force: true }),
};

/** Firecracker: `<runDir>/rootfs.ext4`, a reflink of the base where the file system can, else a sparse copy. */
export const rawCopies: DiskProvider = {
  format: "raw",
  rootDisk: (base: string, runDir: string) => rawCopy(base, runDir),
  cloneDisk: (frozen: DiskSpec, runDir: string) => rawCopy(frozen.path, runDir),
  removeDisk: (runDir: string) => rm(join(runDir, "rootfs.ext4"), { force: true }),
};

async function rawCopy(base: string, runDir: string): Promise<DiskSpec> {
  await mkdir(runDir, { recursive: true, mode: 0o700 });
  const path = join(runDir, "rootfs.ext4");
  if (!existsSync(path)) {
    requireBase(base);
    // Copied under a unique temporary name, so a copy cut short is never taken for the disk and
    // two processes making the same disk do not write into one file.
    const tmp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
    try {
      await copyDisk(base, tmp);
      await rename(tmp, path);
    } finally {
      await rm(tmp, { force: true });
    }
  }
  return { path, format: "raw" };
}
