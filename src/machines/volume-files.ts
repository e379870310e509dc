/**
 * A volume's file on the host: `<dataDir>/volumes/<id>.ext4`, a sparse raw disk (it takes only
 * what the guest wrote), formatted ext4 on the host the first time a machine boots with it (never
 * mounted on the host: the guest's agent mounts it).
 */
import { mkdir, open, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { runTool } from "../assets/exec.js";

export function volumesDir(dataDir: string): string {
  return join(dataDir, "volumes");
}

export function volumePath(dataDir: string, id: string): string {
  return join(volumesDir(dataDir), `${id}.ext4`);
}

/** A new sparse file of `sizeMib` (0600: the guest's data); an existing one is an error. */
export async function createVolumeFile(path: string, dir: string, sizeMib: number): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const fh = await open(path, "wx", 0o600);
  try {
    await fh.truncate(sizeMib * 1024 * 1024);
  } finally {
    await fh.close();
  }
}

/** The volume ids whose files are in `dir` (`vol_<ULID>.ext4`); none when it does not exist. */
export async function volumeFileIds(dir: string): Promise<string[]> {
  const names = await readdir(dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code === "ENOENT") return [];
    throw e;
  });
  return names.map((n) => /^(vol_[0-9A-Z]{26})\.ext4$/.exec(n)?.[1]).filter((id): id is string => id !== undefined);
}

export function removeVolumeFile(path: string): Promise<void> {
  return rm(path, { force: true });
}

/** ext2/3/4 superblock magic 0xEF53 at byte 1080 (superblock at 1024, s_magic at 56), little-endian. */
const EXT_MAGIC_OFFSET = 1080;

/** True when the file already holds an ext filesystem (a volume used before). */
export async function isFormatted(path: string): Promise<boolean> {
  const fh = await open(path, "r");
  try {
    const b = Buffer.alloc(2);
    const { bytesRead } = await fh.read(b, 0, 2, EXT_MAGIC_OFFSET);
    return bytesRead === 2 && b.readUInt16LE(0) === 0xef53;
  } finally {
    await fh.close();
  }
}

/**
 * mkfs.ext4 arguments for a volume (pure). No reserved blocks (`-m 0`: the volume is all the
 * guest's data, not a system disk); inode tables and journal written now (the sparse file keeps
 * them cheap), so the guest's kernel has no lazy-init thread competing with the workload under
 * TCG; the label is the volume's name, cut to ext4's 16 bytes.
 */
export function volumeMkfsArgs(path: string, name: string): string[] {
  return ["-q", "-F", "-m", "0", "-L", name.slice(0, 16), "-E", "lazy_itable_init=0,lazy_journal_init=0", path];
}

/** Formats the volume unless it already holds a filesystem (a volume's data is never formatted away). */
export async function formatIfNew(path: string, name: string, signal?: AbortSignal): Promise<boolean> {
  if (await isFormatted(path)) return false;
  await runTool("mkfs.ext4", volumeMkfsArgs(path, name), { timeoutMs: 120_000, ...(signal && { signal }) });
  return true;
}
