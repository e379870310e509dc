/**
 * The jail of one Firecracker VM, pure: where Firecracker's jailer (v1.16.1, docs/jailer.md) builds
 * it, what we hard-link into it, the jailer's argv, and the VmSpec as Firecracker sees it from
 * inside. Nothing here touches the file system (jailer.ts applies a plan).
 *
 * The jailer creates `<chroot base>/<exec file name>/<id>/root`, copies Firecracker into it,
 * creates `/dev/kvm` and `/dev/net/tun` there, chowns the root to the VM's uid, writes its cgroup v2
 * limits under `<cgroup root>/<parent cgroup>/<id>`, joins the network namespace, pivots into the
 * root and execs Firecracker as that uid with `--id <id>` and what follows `--`. Everything else a
 * VM needs (kernel, initrd, disks, snapshot files) must already be inside.
 */
import { createHash } from "node:crypto";
import { basename, join } from "node:path";
import { HyperfleetError } from "../../core/errors.js";
import type { DiskSpec, VmSnapshot, VmSpec } from "../../core/ports/vmm-driver.js";
import { firecrackerPaths, type FcPaths } from "./config.js";

/** The host-wide part of the jail configuration (HYPERFLEET_JAILER_*, src/config/README.md). */
export interface JailerSettings {
  jailerBinary: string;
  /**
   * The Firecracker binary the jailer execs, as a real path: the jailer canonicalizes it and names
   * the jail's directory after the real file. Its name must contain "firecracker" (the jailer refuses
   * any other).
   */
  firecrackerBinary: string;
  /** Where jails are built, as a real path (the jailer canonicalizes it too). */
  chrootBase: string;
  /** Relative cgroup v2 path under which each VM gets its cgroup (`--parent-cgroup`). */
  cgroupParent: string;
  /** Where the cgroup v2 hierarchy is mounted (the jailer finds it in /proc/mounts the same way). */
  cgroupRoot: string;
  /** First uid (and gid) given to VMs; each running VM holds one of `uidCount` from there. */
  uidBase: number;
  uidCount: number;
  /** What memory.max allows beyond the guest's memory: Firecracker itself, and the page cache of its disks. */
  memOverheadMib: number;
  /** `--new-pid-ns`: Firecracker runs as PID 1 of its own PID namespace; its host pid is then only in the pid file. */
  newPidNs: boolean;
}

/** Settings plus the ids this VM holds (jailer.ts `claimJailIds`). */
export interface JailerOptions extends JailerSettings {
  uid: number;
  gid: number;
  /** Extra Firecracker arguments, after `--api-sock`. */
  firecrackerArgs?: string[];
}

/** A host file that must be visible inside the jail. */
export interface JailLink {
  host: string;
  /** Absolute path inside the jail. */
  jail: string;
  /** Firecracker writes it (a read-write disk): it must be the same file, owned by the VM's uid. */
  writable: boolean;
}

export interface JailPlan {
  vmId: string;
  /** The jailer's `--id`: the VM id where it is valid, else a sanitized form (jailIdFor). */
  jailId: string;
  uid: number;
  gid: number;
  /** `<chroot base>/<exec file name>/<jail id>`: everything of this jail, removed as one. */
  jailDir: string;
  /** `<jailDir>/root`, the directory Firecracker sees as `/`. */
  root: string;
  links: JailLink[];
  /** Files Firecracker writes but does not create (logger, metrics, serial output); jail paths. */
  outputs: string[];
  /** Where Firecracker writes a snapshot: the driver moves the files out to the caller's directory. */
  snapshotOut: { jail: string; host: string };
  /** The jailer command line, argv[0] the jailer binary. */
  argv: string[];
  /** The VM as Firecracker is told about it: every path inside the jail, no namespace (the jailer joins it). */
  spec: VmSpec;
  /** A snapshot to restore, its files at their paths inside the jail. */
  snapshot?: VmSnapshot;
  /** Firecracker's files as it names them (API requests) and as the host reaches them. */
  inside: FcPaths;
  host: FcPaths;
  /** The jailer writes Firecracker's host pid here (with or without `--new-pid-ns`). */
  pidFile: string;
  /** This VM's cgroup (the jailer creates it; removeJail removes it) and its limits. */
  cgroup: { dir: string; cpuMax: string; memoryMax: string };
  /** Sockets a caller named (VmSpec.controlSocket/agentSocket): symlinks to the ones in the jail. */
  symlinks: { path: string; target: string }[];
}

/** The jailer's own id rule (utils::validators::validate_instance_id). */
const JAILER_ID = /^[A-Za-z0-9-]{1,64}$/;
/** Unix socket paths are at most 107 bytes (sun_path is 108 with its NUL). */
const MAX_SOCKET_PATH = 107;
/** cgroup v2's default cpu.max period, in microseconds. */
export const CPU_PERIOD_US = 100_000;
const MiB = 1024 * 1024;

/**
 * The jailer's `--id` for a VM: the id itself when the jailer accepts it (letters, digits and
 * hyphens, at most 64), else its other characters as hyphens plus 8 hex digits of its sha256, so two
 * ids that differ only there (`vm_1`, `vm-1`) still get different jails.
 *
 * @example jailIdFor("vm_01J8ZK3M6N") // "vm-01J8ZK3M6N-<8 hex>"
 */
export function jailIdFor(vmId: string): string {
  if (JAILER_ID.test(vmId)) return vmId;
  const hash = createHash("sha256").update(vmId).digest("hex").slice(0, 8);
  return `${vmId.replace(/[^A-Za-z0-9-]/g, "-").slice(0, 64 - 9)}-${hash}`;
}

/**
 * CPU and memory limits from the VM's shape. cpu.max allows one CPU per vCPU thread plus one for
 * Firecracker's VMM thread, which emulates the devices (a guest busy on every vCPU must not starve
 * its own disk and network). memory.max is the guest's memory plus `overheadMib`.
 */
export function cgroupLimits(vcpus: number, memMib: number, overheadMib: number): { cpuMax: string; memoryMax: string } {
  return { cpuMax: `${(vcpus + 1) * CPU_PERIOD_US} ${CPU_PERIOD_US}`, memoryMax: String((memMib + overheadMib) * MiB) };
}

/**
 * The jail of `spec`. `snapshot`: a restore, whose state and memory files go into the jail too.
 * Throws CONFIG_INVALID for settings the jailer would refuse, VMM_SPAWN_FAILED when the jail's
 * socket paths would be too long for a Unix socket.
 */
export function planJail(spec: VmSpec, o: JailerOptions, snapshot?: VmSnapshot): JailPlan {
  checkSettings(o);
  const jailId = jailIdFor(spec.id);
  const execName = basename(o.firecrackerBinary);
  const jailDir = join(o.chrootBase, execName, jailId);
  const root = join(jailDir, "root");
  const inside = firecrackerPaths("/");
  const host = firecrackerPaths(root);
  for (const p of [host.apiSocket, host.vsockUds]) {
    if (Buffer.byteLength(p) > MAX_SOCKET_PATH) {
      throw new HyperfleetError("VMM_SPAWN_FAILED", `the jail's socket ${p} is longer than ${MAX_SOCKET_PATH} bytes: choose a shorter HYPERFLEET_JAILER_CHROOT_BASE`);
    }
  }

  const links: JailLink[] = [{ host: spec.kernelPath, jail: "/vmlinux", writable: false }];
  if (spec.initrdPath) links.push({ host: spec.initrdPath, jail: "/initrd", writable: false });
  const disk = (d: DiskSpec, jail: string): DiskSpec => {
    links.push({ host: d.path, jail, writable: !d.readOnly });
    return { ...d, path: jail };
  };
  const rootDisk = disk(spec.rootDisk, "/rootfs");
  const extraDisks = spec.extraDisks?.map((d, i) => disk(d, `/disk${i + 1}`));
  let jailed: VmSnapshot | undefined;
  if (snapshot) {
    // Firecracker reads both (the memory file is mapped private, copy-on-write).
    links.push({ host: snapshot.stateFile, jail: "/snapshot/state", writable: false });
    if (snapshot.memoryFile) links.push({ host: snapshot.memoryFile, jail: "/snapshot/memory", writable: false });
    jailed = { ...snapshot, dir: "/snapshot", stateFile: "/snapshot/state", memoryFile: snapshot.memoryFile ? "/snapshot/memory" : null };
  }

  const limits = cgroupLimits(spec.vcpus, spec.memMib, o.memOverheadMib);
  const argv = [
    o.jailerBinary,
    "--id", jailId,
    "--exec-file", o.firecrackerBinary,
    "--uid", String(o.uid),
    "--gid", String(o.gid),
    "--chroot-base-dir", o.chrootBase,
    "--cgroup-version", "2",
    "--parent-cgroup", o.cgroupParent,
    "--cgroup", `cpu.max=${limits.cpuMax}`,
    "--cgroup", `memory.max=${limits.memoryMax}`,
    ...(spec.netns ? ["--netns", spec.netns] : []),
    ...(o.newPidNs ? ["--new-pid-ns"] : []),
    "--",
    "--api-sock", inside.apiSocket,
    ...(o.firecrackerArgs ?? []),
  ];

  const symlinks: JailPlan["symlinks"] = [];
  if (spec.controlSocket) symlinks.push({ path: spec.controlSocket, target: host.apiSocket });
  if (spec.agentSocket) symlinks.push({ path: spec.agentSocket, target: host.vsockUds });

  const jailSpec: VmSpec = { ...spec, kernelPath: "/vmlinux", initrdPath: spec.initrdPath ? "/initrd" : undefined, rootDisk, extraDisks, runDir: "/" };
  delete jailSpec.netns;
  delete jailSpec.controlSocket;
  delete jailSpec.agentSocket;
  if (!spec.initrdPath) delete jailSpec.initrdPath;
  if (!spec.extraDisks) delete jailSpec.extraDisks;

  return {
    vmId: spec.id,
    jailId,
    uid: o.uid,
    gid: o.gid,
    jailDir,
    root,
    links,
    outputs: [inside.log, inside.metrics, inside.console],
    snapshotOut: { jail: "/snapshot-out", host: join(root, "snapshot-out") },
    argv,
    spec: jailSpec,
    ...(jailed ? { snapshot: jailed } : {}),
    inside,
    host,
    pidFile: join(root, `${execName}.pid`),
    cgroup: { dir: join(o.cgroupRoot, o.cgroupParent, jailId), ...limits },
    symlinks,
  };
}

function checkSettings(o: JailerOptions): void {
  const bad = (m: string) => new HyperfleetError("CONFIG_INVALID", m);
  if (!basename(o.firecrackerBinary).includes("firecracker")) {
    throw bad(`the jailer only execs a file whose name contains "firecracker", not ${o.firecrackerBinary}`);
  }
  const parts = o.cgroupParent.split("/");
  if (o.cgroupParent.startsWith("/") || parts.some((p) => p === "" || p === "." || p === "..")) {
    throw bad(`HYPERFLEET_JAILER_CGROUP_PARENT must be a relative cgroup path without '.' or '..', got '${o.cgroupParent}'`);
  }
  for (const id of [o.uid, o.gid]) {
    if (!Number.isInteger(id) || id < o.uidBase || id >= o.uidBase + o.uidCount) throw bad(`uid/gid ${id} is outside HYPERFLEET_JAILER_UID_BASE's range`);
  }
}

/**
 * The cgroup v2 mount point in `/proc/mounts` text (the first `cgroup2` line, as the jailer takes
 * it): `/sys/fs/cgroup` on a unified host, `/sys/fs/cgroup/unified` on a hybrid one; null if none.
 */
export function findCgroup2Mount(procMounts: string): string | null {
  for (const line of procMounts.split("\n")) {
    const f = line.split(" ");
    if (f[2] === "cgroup2" && f[1]) return f[1].replace(/\\040/g, " ");
  }
  return null;
}
