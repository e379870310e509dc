/**
 * Path resolution inside an unpacked image, with the image's symlinks interpreted as the guest
 * will see them. An image controls its symlinks: `/sbin -> /etc` would make a plain
 * `join(rootfs, "sbin/hf-agent")` write to the host's /etc. Every path we write is resolved here
 * first, so it can never leave the rootfs.
 */
import { lstat, readlink } from "node:fs/promises";
import { join } from "node:path";
import { HyperfleetError } from "../core/errors.js";

const MAX_LINKS = 40;

/**
 * Host path of `guestPath` (relative or absolute, as seen inside the image) under `root`.
 * Symlinks in every component are followed within the root, the last one only if `followLast`;
 * components that do not exist are kept as they are (the caller may create them).
 */
export async function resolveInRoot(root: string, guestPath: string, followLast = true): Promise<string> {
  let todo = guestPath.split("/").filter((p) => p !== "" && p !== ".");
  const done: string[] = [];
  let links = 0;
  while (todo.length > 0) {
    const [part, ...rest] = todo as [string, ...string[]];
    todo = rest;
    if (part === "..") {
      done.pop(); // ".." at the root stays at the root, as in the guest
      continue;
    }
    const host = join(root, ...done, part);
    const st = await lstat(host).catch(() => null);
    if (!st?.isSymbolicLink() || (!followLast && todo.length === 0)) {
      done.push(part);
      continue;
    }
    if (++links > MAX_LINKS) throw new HyperfleetError("IMAGE_INVALID", `too many levels of symbolic links resolving /${guestPath} in the image`);
    const target = await readlink(host);
    if (target.startsWith("/")) done.length = 0;
    todo = [...target.split("/").filter((p) => p !== "" && p !== "."), ...todo];
  }
  return join(root, ...done);
}
