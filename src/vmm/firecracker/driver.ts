/**
 * Firecracker adapter of the VMM driver port (docs/firecracker.md, "Driver"). Spawns Firecracker in
 * its own session so VMs outlive the daemon, records what adoption needs (meta.json + pidfile, as
 * the QEMU driver does), configures the VM over its API socket with the pure builders of config.ts
 * (each request checked against the vendored API definition before it is sent: api.ts) and returns
 * once InstanceStart (or a snapshot load) succeeded.
 *
 * Disks: Firecracker restores drives from the paths recorded in the snapshot and `/snapshot/load`
 * has no drive override, yet each clone must open its own disk. So the process runs with the run
 * dir as working directory and a disk inside the run dir is given by its bare file name: Firecracker
 * opens `path_on_host` with a plain open(2), which resolves it against the cwd, so the same recorded
 * `rootfs.ext4` is the source's disk in the source and the clone's own in each clone's run dir.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { mkdir, open, readFile, rm, stat, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { basename, dirname, join, resolve } from "node:path";
import { HyperfleetError, toHyperfleetError, type ErrorCode } from "../../core/errors.js";
import type { DiskSpec, VmHandle, VmmDriver, VmSnapshot, VmSpec } from "../../core/ports/vmm-driver.js";
import { sleep } from "../../host/async.js";
import { isAlive, pidFromFile, vmmEnv, vmmVersionLine, writeJsonSync } from "../process.js";
import { describeRequest } from "./api.js";
import { buildConfigureRequests, buildRestoreRequests, firecrackerPaths, type FcPaths, type FcRequest } from "./config.js";
import { FirecrackerHandle, type FcHostPaths } from "./handle.js";
import { openJail, removeJail } from "./jailer.js";
import type { JailerSettings, JailPlan } from "./jailer-layout.js";
import { plainLaunch, type FcLauncher } from "./launch.js";
import { findFirecrackersIn, firecrackerRunDir, isFirecrackerInJail } from "./scan.js";

const MIB = 1024 * 1024;
/** sun_path is 108 bytes with its NUL. */
const MAX_SOCKET_PATH = 107;

export interface FirecrackerDriverOptions {
  /** The firecracker binary; default `firecracker` on PATH. */
  binary?: string;
  /** How the process is started (plain, or under the jailer); default plainLaunch. */
  launcher?: FcLauncher;
  /** How long Firecracker may take to listen on its API socket. */
  socketTimeoutMs?: number;
  /** Per API request. */
  requestTimeoutMs?: number;
  /**
   * Start every VM through Firecracker's jailer (HYPERFLEET_JAILER=on; jailer.resolveJailerSettings):
   * chroot, its own uid, cgroup. `binary` is then ignored: the jailer execs settings.firecrackerBinary.
   */
  jailer?: JailerSettings;
}

interface Meta {
  id: string;
  /** null from just before the spawn until it returned. */
  pid: number | null;
  startedAt: string;
  argv: string[];
  apiSocket: string;
  vsockUds: string;
  /** The root disk as the host sees it (absolute): what a clone snapshot freezes. */
  rootDisk: DiskSpec;
  /** A jailed VM's jail: where its files are, and what cleanup removes. */
  jail?: JailPlan;
}

/** The VM's files: Firecracker's in the run dir unless the caller named the sockets (VmSpec). */
export function firecrackerHostPaths(spec: Pick<VmSpec, "runDir" | "controlSocket" | "agentSocket">): FcHostPaths {
  const base = firecrackerPaths(spec.runDir);
  return {
    ...base,
    apiSocket: spec.controlSocket ?? base.apiSocket,
    vsockUds: spec.agentSocket ?? base.vsockUds,
    metaFile: join(spec.runDir, "meta.json"),
    pidFile: join(spec.runDir, "firecracker.pid"),
    outLog: join(spec.runDir, "firecracker.out"),
  };
}

/** The spec as Firecracker is told it: disks inside the run dir by their bare name (see the top). Pure. */
export function withRunDirRelativeDisks(spec: VmSpec): VmSpec {
  const dir = resolve(spec.runDir);
  const rel = (d: DiskSpec): DiskSpec => (dirname(resolve(d.path)) === dir ? { ...d, path: basename(d.path) } : d);
  return { ...spec, rootDisk: rel(spec.rootDisk), ...(spec.extraDisks ? { extraDisks: spec.extraDisks.map(rel) } : {}) };
}

/** A jailed VM's files: Firecracker's inside the jail (at their host-side paths), ours in the run dir. */
export function jailedHostPaths(runDir: string, plan: JailPlan): FcHostPaths {
  return { ...plan.host, metaFile: join(runDir, "meta.json"), pidFile: join(runDir, "firecracker.pid"), outLog: join(runDir, "firecracker.out") };
}

interface LaunchPlan {
  /** `inside`: Firecracker's paths as it is told them (the jail's when jailed); `jail`: the jail, when jailed. */
  requests: (inside: FcPaths, jail: JailPlan | null) => FcRequest[];
  /** The code a refused or unanswered request gets. */
  code: ErrorCode;
  /** A restored guest has no `/serial` (only logger and metrics may precede a load): its serial goes to stdout. */
  serialOnStdout: boolean;
}

export class FirecrackerDriver implements VmmDriver {
  readonly kind = "firecracker" as const;
  readonly accel = "kvm" as const;
  private readonly bin: string;
  private readonly launcher: FcLauncher;
  private fingerprintP: Promise<string> | undefined;

  constructor(private readonly opts: FirecrackerDriverOptions = {}) {
    this.bin = opts.binary ?? "firecracker";
    this.launcher = opts.launcher ?? plainLaunch;
  }

  start(spec: VmSpec, signal?: AbortSignal): Promise<VmHandle> {
    const told = withRunDirRelativeDisks(spec);
    const requests = (inside: FcPaths, jail: JailPlan | null) => buildConfigureRequests(jail ? jail.spec : told, inside, { guestCid: spec.guestCid ?? 3 });
    return this.launch(spec, { requests, code: "VMM_SPAWN_FAILED", serialOnStdout: false }, undefined, signal);
  }

  /**
   * A fresh process, logger and metrics, then `/snapshot/load` with a File memory backend (mapped
   * private: the file never changes, clones share its pages), this VM's vsock socket and TAPs, and
   * `resume_vm`. Drives reopen at their recorded paths, relative ones in this VM's run dir.
   */
  async restore(spec: VmSpec, snapshot: VmSnapshot, signal?: AbortSignal): Promise<VmHandle> {
    const memPath = snapshot.memoryFile;
    if (memPath === null) throw new HyperfleetError("SNAPSHOT_INCOMPATIBLE", `snapshot ${snapshot.dir} has no memory file; Firecracker snapshots always have one`);
    for (const f of [snapshot.stateFile, memPath]) {
      const exists = await stat(f).then(
        () => true,
        () => false,
      );
      if (!exists) throw new HyperfleetError("SNAPSHOT_NOT_FOUND", `snapshot file ${f} does not exist`);
    }
    const size = (await stat(memPath)).size;
    if (size !== spec.memMib * MIB) throw new HyperfleetError("SNAPSHOT_INCOMPATIBLE", `snapshot ${snapshot.dir} holds ${size / MIB} MiB of RAM, the VM has ${spec.memMib} MiB`);
    // Jailed: the snapshot's files are linked into the clone's jail (planJail), and its drives
    // reopen at their recorded jail paths (/rootfs), which are this VM's own in its jail.
    const requests = (inside: FcPaths, jail: JailPlan | null) =>
      jail ? buildRestoreRequests(jail.spec, inside, { statePath: jail.snapshot!.stateFile, memPath: jail.snapshot!.memoryFile!, resume: true }) : buildRestoreRequests(spec, inside, { statePath: snapshot.stateFile, memPath, resume: true });
    return this.launch(spec, { requests, code: "SNAPSHOT_FAILED", serialOnStdout: true }, snapshot, signal);
  }

  private async launch(spec: VmSpec, plan: LaunchPlan, snapshot: VmSnapshot | undefined, signal?: AbortSignal): Promise<FirecrackerHandle> {
    if (this.opts.jailer) {
      // With --new-pid-ns the jailer forks and exits: the VMM's pid would have to come from the
      // jail's pid file and its exit from polling, which this driver does not do yet.
      if (this.opts.jailer.newPidNs) throw new HyperfleetError("NOT_SUPPORTED_YET", "HYPERFLEET_JAILER_NEW_PID_NS=on is not supported by the Firecracker driver yet; leave it off");
      await mkdir(spec.runDir, { recursive: true, mode: 0o700 });
      const { plan: jail } = await openJail(spec, this.opts.jailer, snapshot);
      try {
        return await this.launchIn(spec, plan, jailedHostPaths(spec.runDir, jail), jail, signal);
      } catch (e) {
        // The process is gone (launchIn killed it): the jail and its uid claim go too.
        await removeJail(jail, this.opts.jailer).catch(() => undefined);
        throw e;
      }
    }
    return this.launchIn(spec, plan, firecrackerHostPaths(spec), null, signal);
  }

  private async launchIn(spec: VmSpec, plan: LaunchPlan, paths: FcHostPaths, jail: JailPlan | null, signal?: AbortSignal): Promise<FirecrackerHandle> {
    for (const [field, p] of [["controlSocket", paths.apiSocket], ["agentSocket", paths.vsockUds]] as const) {
      if (p.length > MAX_SOCKET_PATH) throw new HyperfleetError("INVALID_ARGUMENT", `${p} is too long for a UNIX socket (max ${MAX_SOCKET_PATH} bytes)`, { details: { field } });
    }
    await mkdir(spec.runDir, { recursive: true, mode: 0o700 });
    // Firecracker refuses to start on an existing API socket ("Address in use"), and a stale vsock
    // socket would make its bind fail at configure time.
    for (const p of [paths.apiSocket, paths.vsockUds, paths.pidFile]) await rm(p, { force: true });
    // Firecracker opens, never creates, its log and metrics files; a fresh log per process (a
    // jail's are made by prepareJail, owned by the VM's uid).
    if (jail === null) {
      await writeFile(paths.log, "");
      await writeFile(paths.metrics, "");
      await writeFile(paths.console, "", { flag: "a" });
    }

    // The jailer does what nsenter does for a plain launch (--netns), and puts Firecracker in the jail.
    const launch = jail ? { file: jail.argv[0]!, args: jail.argv.slice(1), cwd: spec.runDir } : this.launcher({ bin: this.bin, apiSocket: paths.apiSocket, spec });
    // Recorded before the spawn and again with the pid right after it, synchronously: a daemon
    // killed at any point leaves a run dir that says which process to end or adopt (the instants
    // between fork and the second write are covered by the /proc scan in scan.ts).
    const meta: Meta = { id: spec.id, pid: null, startedAt: new Date().toISOString(), argv: [launch.file, ...launch.args], apiSocket: paths.apiSocket, vsockUds: paths.vsockUds, rootDisk: spec.rootDisk, ...(jail ? { jail } : {}) };
    writeJsonSync(paths.metaFile, meta);
    const out = await open(paths.outLog, "w");
    const stdout = plan.serialOnStdout ? await open(paths.console, "a") : null;
    let child: ChildProcess;
    try {
      // Firecracker gets no share of our environment: it holds HYPERFLEET_API_KEY.
      child = spawn(launch.file, launch.args, { cwd: launch.cwd, detached: true, stdio: ["ignore", (stdout ?? out).fd, out.fd], env: vmmEnv() });
      if (child.pid !== undefined) {
        writeJsonSync(paths.metaFile, { ...meta, pid: child.pid });
        writeFileSync(paths.pidFile, `${child.pid}\n`);
      }
    } catch (e) {
      await out.close();
      await stdout?.close();
      await rm(paths.metaFile, { force: true });
      throw e;
    }
    // Listen before any await: 'spawn' fires on the next tick and would be missed.
    const spawned = new Promise<number>((resolve, reject) => {
      child.once("spawn", () => resolve(child.pid!));
      child.once("error", (e: NodeJS.ErrnoException) =>
        reject(
          e.code === "ENOENT"
            ? new HyperfleetError("HOST_TOOL_MISSING", `${launch.file} not found: install Firecracker (docs/firecracker.md) or set ${jail ? "HYPERFLEET_JAILER_BINARY" : "HYPERFLEET_FIRECRACKER_BIN"}`, { cause: e })
            : new HyperfleetError("VMM_SPAWN_FAILED", `cannot start ${launch.file}: ${e.message}`, { cause: e }),
        ),
      );
    });
    // Handled now: it may reject (no such binary) while we close the files below.
    spawned.catch(() => undefined);
    await out.close();
    await stdout?.close();
    let pid: number;
    try {
      pid = await spawned;
    } catch (e) {
      for (const p of [paths.metaFile, paths.pidFile, paths.metrics]) await rm(p, { force: true });
      throw e;
    }
    const handle = new FirecrackerHandle(spec.id, pid, spec.runDir, paths, spec.rootDisk, child, jail);
    let step = "waiting for the API socket";
    try {
      await this.waitForApi(paths.apiSocket, handle, signal);
      for (const r of plan.requests(jail ? jail.inside : paths, jail)) {
        if (signal?.aborted) throw new HyperfleetError(plan.code, `start of ${spec.id} aborted`);
        step = describeRequest(r);
        await handle.api.send(r, { code: plan.code, signal, ...(this.opts.requestTimeoutMs ? { timeoutMs: this.opts.requestTimeoutMs } : {}) });
      }
      return handle;
    } catch (e) {
      // A process that died makes our request fail a moment before its exit event: wait for that
      // briefly, so the error can say how it ended.
      const st = await Promise.race([handle.exited(), sleep(200).then(() => null)]);
      await handle.kill().catch(() => undefined);
      let err = toHyperfleetError(e, plan.code);
      if (st !== null && err.details?.faultMessage === undefined) {
        const how = st.signal ? `signal ${st.signal}` : st.exitCode !== undefined && st.exitCode !== null ? `code ${st.exitCode}` : "unknown cause";
        err = new HyperfleetError(err.code === "VM_START_TIMEOUT" ? plan.code : err.code, `Firecracker of ${spec.id} exited (${how}) during ${step}: ${err.message}`, { cause: e });
      }
      const tail = await handle.logTail();
      if (tail) err = new HyperfleetError(err.code, `${err.message}; Firecracker's log ends with: ${tail}`, { cause: e, ...(err.details ? { details: err.details } : {}) });
      await handle.cleanup();
      throw err;
    }
  }

  /** Until a connect succeeds: the socket file exists from bind(2), before Firecracker listens. */
  private async waitForApi(socket: string, handle: FirecrackerHandle, signal?: AbortSignal): Promise<void> {
    const timeoutMs = this.opts.socketTimeoutMs ?? 10_000;
    const deadline = Date.now() + timeoutMs;
    let exited = false;
    void handle.exited().then(() => (exited = true));
    for (;;) {
      if (await canConnect(socket)) return;
      if (exited) throw new HyperfleetError("VMM_SPAWN_FAILED", "Firecracker exited before it listened on its API socket");
      if (signal?.aborted) throw new HyperfleetError("VMM_SPAWN_FAILED", "VM start aborted");
      if (Date.now() > deadline) throw new HyperfleetError("VM_START_TIMEOUT", `Firecracker did not listen on ${socket} within ${timeoutMs} ms`);
      await sleep(5);
    }
  }

  /** `firecracker:<Firecracker's version line>`; asked once per driver. Always KVM, so no accel part. */
  fingerprint(): Promise<string> {
    this.fingerprintP ??= vmmVersionLine(this.bin, "install Firecracker (docs/firecracker.md)").then((v) => `firecracker:${v}`);
    return this.fingerprintP;
  }

  async adopt(id: string, runDir: string): Promise<VmHandle | null> {
    const defaults = firecrackerHostPaths({ runDir });
    let meta: Meta | null = null;
    try {
      meta = JSON.parse(await readFile(defaults.metaFile, "utf8")) as Meta;
    } catch {
      // Missing or unreadable: the process whose working directory is the run dir (scan.ts).
    }
    if (meta !== null && meta.id !== id) return null;
    const jail = meta?.jail ?? null;
    let pid: number | undefined;
    let paths: FcHostPaths;
    if (jail !== null) {
      // The jailer writes its pid into the jail; the process is checked by its root (scan.ts).
      pid = meta?.pid ?? (await pidFromFile(jail.pidFile));
      if (pid === undefined || !(await isFirecrackerInJail(pid, jail.root))) return null;
      paths = jailedHostPaths(runDir, jail);
    } else {
      pid = meta?.pid ?? (await pidFromFile(defaults.pidFile)) ?? (await findFirecrackersIn(runDir))[0]?.pid;
      if (pid === undefined || !(await isAlive(pid)) || (await firecrackerRunDir(pid)) !== resolve(runDir)) return null;
      paths = { ...defaults, ...(meta ? { apiSocket: meta.apiSocket, vsockUds: meta.vsockUds } : {}) };
    }
    const handle = new FirecrackerHandle(id, pid, runDir, paths, meta?.rootDisk ?? null, null, jail);
    const st = await handle.status();
    if (st.state === "running" || st.state === "paused") return handle;
    // Alive but its API does not answer: ours but uncontrollable; end it.
    await handle.kill().catch(() => undefined);
    return null;
  }
}

async function canConnect(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

