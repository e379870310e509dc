/**
 * Filesystem helpers that keep an interrupted setup from leaving half-written assets: everything is
 * built under <dataDir>/tmp (same filesystem) and renamed into place once complete.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdir, mkdtemp, open, readdir, rename, rm, stat } from "node:fs/promises";
import { dirname, join } from "node:path";

/** SHA-256 of the data, hex. */
export function sha256Hex(...parts: (Uint8Array | string)[]): string {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest("hex");
}

/** True if the path exists (any type; symlinks followed). */
export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Writes data to a temp file next to `path`, fsyncs it and renames it over `path`. */
export async function writeFileAtomic(path: string, data: Uint8Array | string, mode = 0o644): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
  try {
    const fh = await open(tmp, "w", mode);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

/**
 * A fresh directory under <dataDir>/tmp, on the same filesystem as the final assets. Its name
 * carries our PID so sweepStaleWorkDirs can tell an abandoned one from one in use.
 */
export async function makeWorkDir(dataDir: string, prefix: string): Promise<string> {
  const base = join(dataDir, "tmp");
  await mkdir(base, { recursive: true });
  return mkdtemp(join(base, `${prefix}-${process.pid}-`));
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Removes work directories left by a setup that was killed (its PID no longer runs). */
export async function sweepStaleWorkDirs(dataDir: string): Promise<string[]> {
  const base = join(dataDir, "tmp");
  const removed: string[] = [];
  for (const name of await readdir(base).catch(() => [] as string[])) {
    const pid = Number(/-(\d+)-[^-]+$/.exec(name)?.[1]);
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || isAlive(pid)) continue;
    await rm(join(base, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

/**
 * Renames a finished directory into place. If another setup got there first, keeps theirs and
 * removes ours (both hold the same content).
 */
export async function publishDir(from: string, to: string): Promise<void> {
  await mkdir(dirname(to), { recursive: true });
  try {
    await rename(from, to);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== "ENOTEMPTY" && code !== "EEXIST") throw e;
    await rm(from, { recursive: true, force: true });
  }
}
