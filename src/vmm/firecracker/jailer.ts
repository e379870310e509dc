/**
 * Applies a jail plan (jailer-layout.ts): the VM's uid and gid from the configured range, the jail
 * directory with its hard links, and the cleanup after the VMM is gone. The driver's sequence:
 *
 *   const jail = await openJail(spec, settings);      // claim ids, plan, prepare
 *   spawn(jail.plan.argv)                             // the jailer execs Firecracker
 *   ... API requests with jail.plan.spec and jail.plan.inside, host side at jail.plan.host ...
 *   await removeJail(jail.plan);                      // once the VMM has exited
 */
import { constants } from "node:fs";
import { access, chmod, chown, link, lstat, mkdir, readdir, readFile, readlink, realpath, rm, rmdir, stat, symlink, unlink, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { HyperfleetError } from "../../core/errors.js";
import type { VmSnapshot, VmSpec } from "../../core/ports/vmm-driver.js";
import { copyDisk, type CopyMethod } from "../disk-copy.js";
import { isOurProcess } from "../process.js";
import { findCgroup2Mount, jailIdFor, planJail, type JailerSettings, type JailPlan } from "./jailer-layout.js";

/** Where the VMs' uid claims live: one symlink `<uid> -> <jail id>` per running jail. */
export const claimsDir = (s: Pick<JailerSettings, "chrootBase">) => join(s.chrootBase, ".hyperfleet-uids");

/**
 * The uid (and the gid, the same number) of `jailId`: the one it already holds, else the lowest free
 * one of the range. A claim is a symlink created with O_EXCL semantics, so two processes (a daemon
 * and a library) never get the same id; removeJail gives it back.
 */
export async function claimJailIds(s: Pick<JailerSettings, "chrootBase" | "uidBase" | "uidCount">, jailId: string): Promise<{ uid: number; gid: number }> {
  const dir = claimsDir(s);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const held = new Set<number>();
  for (const name of await readdir(dir)) {
    const uid = Number(name);
    if (!Number.isInteger(uid)) continue;
    const owner = await readlink(join(dir, name)).catch(() => null);
    if (owner === jailId) return { uid, gid: uid };
    held.add(uid);
  }
  for (let uid = s.uidBase; uid < s.uidBase + s.uidCount; uid++) {
    if (held.has(uid)) continue;
    try {
      await symlink(jailId, join(dir, String(uid)));
      return { uid, gid: uid };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
  }
  throw new HyperfleetError("VMM_SPAWN_FAILED", `all ${s.uidCount} jail uids from ${s.uidBase} are held by running VMs: raise HYPERFLEET_JAILER_UID_COUNT`);
}

/** The uid claim of `plan`, given back only if it is still this jail's. */
async function releaseJailIds(plan: JailPlan, s: Pick<JailerSettings, "chrootBase">): Promise<void> {
  const path = join(claimsDir(s), String(plan.uid));
  if ((await readlink(path).catch(() => null)) === plan.jailId) await unlink(path).catch(ignore("ENOENT"));
}

/** A file copied into the jail instead of linked, and what that cost. */
export interface JailCopy {
  host: string;
  jail: string;
  method: CopyMethod;
  /** Bytes the copy allocates on disk. */
  bytes: number;
  why: "other file system" | "not readable by the VM's uid";
}

export interface PreparedJail {
  plan: JailPlan;
  /** Files linked in (no cost). */
  linked: string[];
  /** Files copied in: the driver logs them, since each costs disk space and time. */
  copied: JailCopy[];
}

/**
 * Claims the VM's ids, plans its jail and prepares it: the one call a driver makes before spawning
 * `plan.argv`. `snapshot`: a restore, whose files go into the jail too.
 */
export async function openJail(spec: VmSpec, settings: JailerSettings, snapshot?: VmSnapshot, firecrackerArgs?: string[]): Promise<PreparedJail> {
  const ids = await claimJailIds(settings, jailIdFor(spec.id));
  const plan = planJail(spec, { ...settings, ...ids, ...(firecrackerArgs ? { firecrackerArgs } : {}) }, snapshot);
  try {
    return await prepareJail(plan);
  } catch (e) {
    await releaseJailIds(plan, settings);
    throw e;
  }
}

/**
 * Builds the jail directory from scratch (a stale one from an earlier run is removed first: the
 * jailer refuses an existing pid file or device node). Read-only files are hard-linked and keep
 * their owner, so the VM reads them through their "other" permission bits; one it could not read, or
 * one on another file system, is copied in (reflink or sparse) and owned by the VM. A read-write
 * disk must be the VM's own file, so it is linked and owned by the VM's uid (mode 0600); on another
 * file system than the chroot base this is refused, since a copy would take the guest's writes away
 * from the machine's disk.
 */
export async function prepareJail(plan: JailPlan): Promise<PreparedJail> {
  await refuseIfRunning(plan);
  await rm(plan.jailDir, { recursive: true, force: true });
  await mkdir(plan.jailDir, { recursive: true, mode: 0o700 });
  await chmod(plan.jailDir, 0o700);
  await mkdir(plan.root, { mode: 0o700 });
  const owned = async (p: string, mode: number) => {
    await chown(p, plan.uid, plan.gid);
    await chmod(p, mode);
  };
  const linked: string[] = [];
  const copied: JailCopy[] = [];
  for (const l of plan.links) {
    const dst = join(plan.root, l.jail);
    await mkdir(dirname(dst), { recursive: true, mode: 0o755 });
    const st = await stat(l.host).catch((e: unknown) => {
      throw new HyperfleetError("VMM_SPAWN_FAILED", `${l.host} (for ${l.jail} in the jail) is missing`, { cause: e });
    });
    const readable = l.writable || readableBy(st, plan.uid, plan.gid);
    let why: JailCopy["why"] | null = readable ? null : "not readable by the VM's uid";
    if (why === null) {
      try {
        await link(l.host, dst);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EXDEV") throw e;
        if (l.writable) {
          throw new HyperfleetError("VMM_SPAWN_FAILED", `the read-write disk ${l.host} is on another file system than HYPERFLEET_JAILER_CHROOT_BASE (${plan.jailDir}): it cannot be linked into the jail, and a copy would keep the guest's writes from the machine's disk; put both on one file system`, { cause: e });
        }
        why = "other file system";
      }
    }
    if (why === null) {
      if (l.writable) await owned(dst, 0o600);
      linked.push(l.jail);
      continue;
    }
    const method = await copyDisk(l.host, dst);
    await owned(dst, 0o400);
    copied.push({ host: l.host, jail: l.jail, method, bytes: (await stat(dst)).blocks * 512, why });
  }
  for (const p of plan.outputs) {
    const path = join(plan.root, p);
    await writeFile(path, "", { mode: 0o600, flag: "w" });
    await owned(path, 0o600);
  }
  await mkdir(plan.snapshotOut.host, { mode: 0o700 });
  await owned(plan.snapshotOut.host, 0o700);
  for (const s of plan.symlinks) {
    await removeOwnSymlink(s.path, null);
    await mkdir(dirname(s.path), { recursive: true, mode: 0o700 });
    await symlink(s.target, s.path);
  }
  return { plan, linked, copied };
}

/**
 * Removes what the jail of `plan` left: its cgroup (first: it fails while a process is still in
 * it, and then nothing else is touched), the jail directory (links only: the machine's disk and the
 * shared assets stay; the disk is root's again), the symlinks it made and its uid claim. Idempotent; touches nothing that is
 * not this jail's. Refuses while its Firecracker runs.
 */
export async function removeJail(plan: JailPlan, settings: Pick<JailerSettings, "chrootBase"> = { chrootBase: dirname(dirname(plan.jailDir)) }): Promise<void> {
  await refuseIfRunning(plan);
  try {
    await rmdir(plan.cgroup.dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "EBUSY") throw new HyperfleetError("VMM_CONTROL_FAILED", `cgroup ${plan.cgroup.dir} still has processes: the VM's Firecracker has not exited`, { cause: e });
    if (code !== "ENOENT") throw e;
  }
  await rm(plan.jailDir, { recursive: true, force: true });
  // The machine's disk goes back to root: its uid is given back below and may go to another VM.
  for (const l of plan.links.filter((x) => x.writable)) {
    const st = await stat(l.host).catch(() => null);
    if (st?.uid === plan.uid) await chown(l.host, 0, 0);
  }
  for (const s of plan.symlinks) await removeOwnSymlink(s.path, s.target);
  await releaseJailIds(plan, settings);
}

/** The jailer configuration as chosen (HYPERFLEET_JAILER_*), before it is checked against the host. */
export type JailerChoice = Pick<JailerSettings, "chrootBase" | "cgroupParent" | "uidBase" | "uidCount" | "newPidNs"> & { binary: string };

/**
 * The settings a driver plans jails with: both binaries checked (HOST_TOOL_MISSING, naming the setup
 * command), the Firecracker binary and the chroot base (created if absent) as real paths, as the
 * jailer sees them, and this host's cgroup v2 mount.
 */
export async function resolveJailerSettings(c: JailerChoice, firecrackerBinary: string, memOverheadMib: number): Promise<JailerSettings> {
  const tool = async (p: string, what: string) => {
    try {
      await access(p, constants.X_OK);
      return await realpath(p);
    } catch (e) {
      throw new HyperfleetError("HOST_TOOL_MISSING", `${what} ${p} is missing or not executable: run \`npm run setup -- --firecracker\``, { cause: e });
    }
  };
  const jailerBinary = await tool(c.binary, "the jailer");
  const fc = await tool(firecrackerBinary, "Firecracker");
  await mkdir(c.chrootBase, { recursive: true, mode: 0o755 });
  return {
    jailerBinary,
    firecrackerBinary: fc,
    chrootBase: await realpath(c.chrootBase),
    cgroupParent: c.cgroupParent,
    cgroupRoot: await cgroup2Root(),
    uidBase: c.uidBase,
    uidCount: c.uidCount,
    memOverheadMib,
    newPidNs: c.newPidNs,
  };
}

/** The cgroup v2 mount point of this host, as the jailer finds it; HOST_TOOL_MISSING when none is mounted. */
export async function cgroup2Root(): Promise<string> {
  const root = findCgroup2Mount(await readFile("/proc/mounts", "utf8"));
  if (root === null) throw new HyperfleetError("HOST_TOOL_MISSING", "no cgroup2 file system is mounted: the jailer's cgroup v2 limits need one (mount -t cgroup2 none /sys/fs/cgroup)");
  return root;
}

/** The jail's Firecracker, if it still runs (its pid file names it; the command line must carry the jail id). */
async function refuseIfRunning(plan: JailPlan): Promise<void> {
  const pid = Number((await readFile(plan.pidFile, "utf8").catch(() => "")).trim());
  if (pid > 0 && (await isOurProcess(pid, plan.jailId))) {
    throw new HyperfleetError("VMM_CONTROL_FAILED", `the jail ${plan.jailDir} is in use by Firecracker pid ${pid}`);
  }
}

/** Removes `path` if it is a symlink (pointing at `target`, when given); never a file or directory. */
async function removeOwnSymlink(path: string, target: string | null): Promise<void> {
  const st = await lstat(path).catch(() => null);
  if (!st?.isSymbolicLink()) return;
  if (target !== null && (await readlink(path)) !== target) return;
  await unlink(path).catch(ignore("ENOENT"));
}

function readableBy(st: { mode: number; uid: number; gid: number }, uid: number, gid: number): boolean {
  if (st.uid === uid) return (st.mode & constants.S_IRUSR) !== 0;
  if (st.gid === gid) return (st.mode & constants.S_IRGRP) !== 0;
  return (st.mode & constants.S_IROTH) !== 0;
}

const ignore = (code: string) => (e: unknown) => {
  if ((e as NodeJS.ErrnoException).code !== code) throw e;
};
