/**
 * Copying a raw disk image cheaply. Firecracker takes raw images only, so each VM's writable disk
 * is a copy of its base; a plain copy would write every byte of a mostly empty 512 MiB image
 * (seconds, and the whole size on disk). A reflink shares the extents (copy-on-write, instant);
 * where the file system has none, a sparse copy writes only the data and leaves the holes.
 */
import { execFile } from "node:child_process";
import { constants } from "node:fs";
import { copyFile, rm } from "node:fs/promises";
import { promisify } from "node:util";

const run = promisify(execFile);

/** How a copy was made: shared extents, data only, or every byte. */
export type CopyMethod = "reflink" | "sparse" | "full";

/**
 * Copies `src` to `dst` (replacing it) the cheapest way the file system allows: a reflink
 * (FICLONE), else `cp --sparse=always` (SEEK_DATA/SEEK_HOLE: holes stay holes, and zero-filled
 * runs become holes), else a full copy when `cp` is missing. Returns which one it was.
 */
export async function copyDisk(src: string, dst: string): Promise<CopyMethod> {
  try {
    // FICLONE_FORCE fails at once where reflinks are unsupported, instead of falling back to a
    // full copy the way COPYFILE_FICLONE does.
    await copyFile(src, dst, constants.COPYFILE_FICLONE_FORCE);
    return "reflink";
  } catch (e) {
    if (!cannotClone(e)) throw e;
  }
  await rm(dst, { force: true });
  try {
    await run("cp", ["--sparse=always", "--reflink=never", "--", src, dst]);
    return "sparse";
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
  await copyFile(src, dst);
  return "full";
}

// What FICLONE answers when the file system (or the pair of file systems) cannot share extents.
const NO_CLONE = new Set(["ENOTSUP", "EOPNOTSUPP", "EXDEV", "EINVAL", "ENOSYS", "ENOTTY"]);

function cannotClone(e: unknown): boolean {
  return NO_CLONE.has((e as NodeJS.ErrnoException).code ?? "");
}
