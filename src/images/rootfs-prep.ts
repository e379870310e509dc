/**
 * Makes an unpacked image bootable by our guest: the agent as /sbin/hf-agent (hf-init's default
 * `hf.init=`), the mount points it mounts on, and the /etc files programs expect. Like Docker's
 * bind mounts, our /etc/hostname, /etc/hosts and /etc/resolv.conf replace the image's (Debian's
 * debootstrap, for one, leaves the build host's resolv.conf in). Also measures the tree for sizing.
 */
import { chmod, lstat, mkdir, readdir, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { HyperfleetError } from "../core/errors.js";
import { AGENT_PATH } from "../assets/rootfs-layout.js";
import type { TreeUsage } from "./disk-plan.js";
import { resolveInRoot } from "./in-root.js";

/** Mount points the agent mounts on as PID 1 (guest/agent/pid1.c), with their usual modes. */
const MOUNT_POINTS: readonly [string, number][] = [
  ["proc", 0o555],
  ["sys", 0o555],
  ["dev", 0o755],
  ["run", 0o755],
  ["tmp", 0o1777],
];

/** Placeholder hostname; the agent sets the real one from `hf.hostname=` at boot. */
const HOSTNAME = "hyperfleet";

/** Files we always write (replacing the image's), and files we add only when the image has none. */
function etcFiles(): { always: [string, string][]; ifMissing: [string, string][] } {
  return {
    always: [
      ["etc/hostname", `${HOSTNAME}\n`],
      ["etc/hosts", `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t${HOSTNAME}\n`],
      ["etc/resolv.conf", "# Hyperfleet: written when the VM's network is configured.\n"],
    ],
    ifMissing: [
      ["etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"],
      ["etc/group", "root:x:0:\n"],
    ],
  };
}

/** Writes a regular file at guestPath (its parents resolved in the root), replacing a non-directory. */
async function putFile(root: string, guestPath: string, data: Uint8Array | string, mode: number): Promise<void> {
  const parent = await resolveInRoot(root, dirname(guestPath));
  const path = join(parent, guestPath.slice(guestPath.lastIndexOf("/") + 1));
  await mkdir(parent, { recursive: true }).catch((e: unknown) => {
    throw new HyperfleetError("IMAGE_INVALID", `cannot create /${dirname(guestPath)} in the image: it is not a directory`, { cause: e });
  });
  const st = await lstat(path).catch(() => null);
  if (st?.isDirectory()) throw new HyperfleetError("IMAGE_INVALID", `/${guestPath} is a directory in the image; Hyperfleet needs a file there`);
  if (st) await rm(path);
  await writeFile(path, data, { mode });
  await chmod(path, mode); // writeFile's mode is subject to the umask
}

async function ensureDir(root: string, guestPath: string, mode: number): Promise<void> {
  const path = await resolveInRoot(root, guestPath);
  const st = await lstat(path).catch(() => null);
  if (st?.isDirectory()) return;
  if (st) await rm(path);
  await mkdir(path, { recursive: true });
  await chmod(path, mode);
}

/** Adds the agent, mount points and /etc files to an unpacked rootfs. */
export async function prepareRootfs(root: string, agent: Uint8Array): Promise<void> {
  await chmod(root, 0o755);
  await putFile(root, AGENT_PATH, agent, 0o755);
  for (const [dir, mode] of MOUNT_POINTS) await ensureDir(root, dir, mode);
  const etc = etcFiles();
  for (const [path, body] of etc.always) await putFile(root, path, body, 0o644);
  for (const [path, body] of etc.ifMissing) {
    const resolved = await resolveInRoot(root, path);
    if (!(await lstat(resolved).catch(() => null))) await putFile(root, path, body, 0o644);
  }
}

const BLOCK = 4096;
const roundUp = (n: number) => Math.ceil(n / BLOCK) * BLOCK;

/** Data bytes and inode count of a tree, as ext4 will store it (hard links counted once). */
export async function measureTree(root: string): Promise<TreeUsage> {
  const seen = new Set<string>();
  let dataBytes = 0;
  let inodes = 0;
  const dirs = [root];
  while (dirs.length > 0) {
    const dir = dirs.pop()!;
    const names = await readdir(dir);
    inodes++;
    dataBytes += roundUp(Math.max(1, names.length) * 32); // directory entries
    for (const name of names) {
      const p = join(dir, name);
      const st = await lstat(p);
      if (st.isDirectory()) {
        dirs.push(p);
        continue;
      }
      if (st.nlink > 1) {
        const id = `${st.dev}:${st.ino}`;
        if (seen.has(id)) continue;
        seen.add(id);
      }
      inodes++;
      if (st.isFile()) dataBytes += roundUp(st.size);
      else if (st.isSymbolicLink() && st.size >= 60) dataBytes += BLOCK; // short targets live in the inode
    }
  }
  return { dataBytes, inodes };
}
