/**
 * QEMU adapter of the VMM driver port. Spawns qemu-system-x86_64 in its own session so VMs outlive
 * the daemon, records what is needed to adopt them later (meta.json + pidfile), and controls them
 * over QMP. The command line comes from the pure builder in argv.ts.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { lstat, mkdir, open, readFile, rm, stat } from "node:fs/promises";
import { connect } from "node:net";
import { join, resolve } from "node:path";
import { HyperfleetError, toHyperfleetError } from "../../core/errors.js";
import type { VmHandle, VmmDriver, VmSnapshot, VmSpec } from "../../core/ports/vmm-driver.js";
import { type Accel, buildQemuArgv, type GuestMemory, qemuLaunchCommand, type QemuLaunch, type QemuPaths, socketsOfArgv } from "./argv.js";
import { migrateFromFile, setIgnoreShared } from "./migration.js";
import { QemuHandle } from "./handle.js";
import { sleep } from "../../host/async.js";
import { isAlive, pidFromFile, readLogTail, vmmEnv, vmmVersionLine, writeJsonSync } from "../process.js";
import { hostTscKhz } from "../host.js";
import { findVmmsIn, runDirOfArgv } from "./scan.js";

const MIB = 1024 * 1024;

export interface QemuDriverOptions {
  accel: Accel;
  qemuBinary?: string;
  tbSizeMib?: number;
}

interface Meta {
  id: string;
  /** null from just before the spawn until it returned. */
  pid: number | null;
  accel: Accel;
  startedAt: string;
  argv: string[];
}

export function qemuPaths(runDir: string): QemuPaths & { metaFile: string; stderrLog: string } {
  return {
    qmpSocket: join(runDir, "qmp.sock"),
    agentSocket: join(runDir, "agent.sock"),
    consoleLog: join(runDir, "console.log"),
    pidFile: join(runDir, "qemu.pid"),
    metaFile: join(runDir, "meta.json"),
    stderrLog: join(runDir, "qemu.log"),
  };
}

type RunPaths = ReturnType<typeof qemuPaths>;

/** The run dir's paths with the sockets a caller named (VmSpec.controlSocket, agentSocket) in place of ours. */
export function specPaths(spec: Pick<VmSpec, "runDir" | "controlSocket" | "agentSocket">): RunPaths {
  return {
    ...qemuPaths(spec.runDir),
    ...(spec.controlSocket !== undefined && { qmpSocket: resolve(spec.controlSocket) }),
    ...(spec.agentSocket !== undefined && { agentSocket: resolve(spec.agentSocket) }),
  };
}

export class QemuDriver implements VmmDriver {
  readonly kind = "qemu" as const;
  private readonly bin: string;
  private fingerprintP: Promise<string> | undefined;

  constructor(private readonly opts: QemuDriverOptions) {
    this.bin = opts.qemuBinary ?? "qemu-system-x86_64";
  }

  get accel(): Accel {
    return this.opts.accel;
  }

  async start(spec: VmSpec, signal?: AbortSignal): Promise<VmHandle> {
    return this.spawnVmm(spec, {}, signal);
  }

  /**
   * docs/adr/0009: the same command line as the source's plus `-incoming defer`; a clone maps the
   * snapshot's RAM file private (copy-on-write: the file never changes), a suspend, or a snapshot
   * of a clone (its RAM was not a memfd), loads its RAM from the stream into a fresh memfd. The
   * stream leaves the guest paused (its source was paused when it was written), so `cont` starts it.
   */
  async restore(spec: VmSpec, snapshot: VmSnapshot, signal?: AbortSignal): Promise<VmHandle> {
    const clone = snapshot.memoryFile !== null;
    for (const f of [snapshot.stateFile, ...(clone ? [snapshot.memoryFile!] : [])]) {
      if (!existsSync(f)) throw new HyperfleetError("SNAPSHOT_NOT_FOUND", `snapshot file ${f} does not exist`);
    }
    if (clone) {
      const size = (await stat(snapshot.memoryFile!)).size;
      if (size !== spec.memMib * MIB) throw new HyperfleetError("SNAPSHOT_INCOMPATIBLE", `snapshot ${snapshot.dir} holds ${size / MIB} MiB of RAM, the VM has ${spec.memMib} MiB`);
    }
    const memory: GuestMemory = clone ? { kind: "file", path: snapshot.memoryFile! } : { kind: "memfd" };
    const handle = await this.spawnVmm(spec, { memory, incoming: true }, signal);
    try {
      const qmp = handle.qmpClient();
      // The source left the RAM out of the stream only if this side expects it too.
      await migrateFromFile(qmp, snapshot.stateFile, { ignoreShared: clone });
      if (signal?.aborted) throw new HyperfleetError("SNAPSHOT_FAILED", "VM restore aborted");
      // Off again, sent with the cont (the guest runs one round trip sooner): this VM's own
      // snapshots carry their RAM in the stream (its RAM is not shared).
      await Promise.all([qmp.execute("cont"), ...(clone ? [setIgnoreShared(qmp, false)] : [])]);
      return handle;
    } catch (e) {
      await handle.kill().catch(() => undefined);
      // A damaged stream ends QEMU ("load of migration failed"): what failed is the restore, and
      // QEMU's log says why.
      const he = toHyperfleetError(e, "SNAPSHOT_FAILED");
      const err = await withVmmLog(he.code.startsWith("SNAPSHOT_") ? he : new HyperfleetError("SNAPSHOT_FAILED", `restoring ${snapshot.dir}: ${he.message}`, { cause: e }), handle.paths.stderrLog);
      await handle.cleanup();
      throw err;
    }
  }

  private async spawnVmm(spec: VmSpec, launch: Pick<QemuLaunch, "memory" | "incoming">, signal?: AbortSignal): Promise<QemuHandle> {
    const paths = specPaths(spec);
    checkSocketPath(paths.qmpSocket, spec.controlSocket !== undefined ? "controlSocket" : "runDir");
    checkSocketPath(paths.agentSocket, spec.agentSocket !== undefined ? "agentSocket" : "runDir");
    await mkdir(spec.runDir, { recursive: true, mode: 0o700 });
    // Sockets left by an earlier run of the same VM would make QEMU fail to bind.
    for (const p of [paths.qmpSocket, paths.agentSocket]) await removeStaleSocket(p);
    await rm(paths.pidFile, { force: true });

    const argv = buildQemuArgv({ spec, accel: this.opts.accel, paths, tbSizeMib: this.opts.tbSizeMib, tscKhz: hostTscKhz(), ...launch });
    // Recorded before the spawn and again with the pid right after it, synchronously: a daemon
    // killed at any point of a boot leaves a run dir that says which process to end or adopt.
    // (The instants between fork and the second write are covered by the /proc scan in scan.ts.)
    const meta: Meta = { id: spec.id, pid: null, accel: this.opts.accel, startedAt: new Date().toISOString(), argv: [this.bin, ...argv] };
    writeJsonSync(paths.metaFile, meta);
    const log = await open(paths.stderrLog, "w");
    let child: ChildProcess;
    try {
      // QEMU gets no share of our environment: it holds HYPERFLEET_API_KEY.
      const launch = qemuLaunchCommand(this.bin, argv, spec.netns);
      child = spawn(launch.file, launch.args, { detached: true, stdio: ["ignore", log.fd, log.fd], env: vmmEnv() });
      if (child.pid !== undefined) writeJsonSync(paths.metaFile, { ...meta, pid: child.pid });
    } catch (e) {
      await log.close();
      await rm(paths.metaFile, { force: true });
      throw e;
    }
    // Listen before any await: 'spawn' fires on the next tick and would be missed.
    const spawned = new Promise<number>((resolve, reject) => {
      child.once("spawn", () => resolve(child.pid!));
      child.once("error", (e: NodeJS.ErrnoException) =>
        reject(e.code === "ENOENT"
          ? new HyperfleetError("HOST_TOOL_MISSING", `${spec.netns === undefined ? this.bin : `nsenter or ${this.bin}`} not found: run \`npm run setup\` to install qemu-system-x86 (and util-linux)`, { cause: e })
          : new HyperfleetError("VMM_SPAWN_FAILED", `cannot start ${this.bin}: ${e.message}`, { cause: e })),
      );
    });
    // Handled now: it may reject (no such binary) while we close the log below.
    spawned.catch(() => undefined);
    await log.close();
    let pid: number;
    try {
      pid = await spawned;
    } catch (e) {
      await rm(paths.metaFile, { force: true });
      throw e;
    }
    // Not unref()ed: awaiting the exit of a VMM that died early must keep the event loop alive.
    // Surviving the parent comes from `detached` (own session) and stdio on files, not from unref.
    const handle = new QemuHandle(spec.id, pid, spec.runDir, paths, child);
    try {
      await this.waitForSockets(paths, handle, signal);
      await handle.attachQmp(5_000);
      return handle;
    } catch (e) {
      await handle.kill().catch(() => undefined);
      const err = await withVmmLog(e, paths.stderrLog);
      await handle.cleanup();
      throw err;
    }
  }

  /** `qemu:<accel>:<QEMU's version line>`; asked once per driver. */
  fingerprint(): Promise<string> {
    this.fingerprintP ??= vmmVersionLine(this.bin, "run `npm run setup`").then((v) => `qemu:${this.opts.accel}:${v}`);
    return this.fingerprintP;
  }

  async adopt(id: string, runDir: string): Promise<VmHandle | null> {
    const paths = qemuPaths(runDir);
    let meta: Meta | null = null;
    try {
      meta = JSON.parse(await readFile(paths.metaFile, "utf8")) as Meta;
    } catch {
      // Missing or unreadable: the run dir on a QEMU's command line still names it (below).
    }
    if (meta !== null && meta.id !== id) return null;
    // No pid recorded (the daemon died between recording the boot and the spawn returning, or the
    // record is gone): QEMU's own pidfile, else the process whose command line points here.
    const pid = meta?.pid ?? (await pidFromFile(paths.pidFile)) ?? (await findVmmsIn(runDir))[0]?.pid;
    const argv = pid === undefined ? null : await vmmArgvOf(pid, runDir);
    if (pid === undefined || argv === null) return null;
    // Sockets a caller named live outside the run dir: the live command line says where.
    const handle = new QemuHandle(id, pid, runDir, { ...paths, ...socketsOfArgv(argv) }, null);
    try {
      await handle.attachQmp(5_000);
    } catch {
      // The process exists but QMP does not answer: treat it as ours but uncontrollable; kill it.
      await handle.kill().catch(() => undefined);
      return null;
    }
    return handle;
  }

  private async waitForSockets(paths: QemuPaths & { stderrLog: string }, handle: QemuHandle, signal?: AbortSignal): Promise<void> {
    const deadline = Date.now() + 10_000;
    let exited = false;
    void handle.exited().then(() => (exited = true));
    while (!(existsSync(paths.qmpSocket) && existsSync(paths.agentSocket))) {
      if (exited) throw new HyperfleetError("VMM_SPAWN_FAILED", "QEMU exited during startup");
      if (signal?.aborted) throw new HyperfleetError("VMM_SPAWN_FAILED", "VM start aborted");
      if (Date.now() > deadline) throw new HyperfleetError("VM_START_TIMEOUT", "QEMU did not create its control sockets within 10 s");
      await sleep(2);
    }
  }
}

/** The command line of `pid` if it is a live QEMU pointing into exactly `runDir` (guards against PID reuse); else null. */
async function vmmArgvOf(pid: number, runDir: string): Promise<string[] | null> {
  if (!(await isAlive(pid))) return null;
  try {
    const argv = (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0");
    return runDirOfArgv(argv) === resolve(runDir) ? argv : null;
  } catch {
    return null;
  }
}

/** UNIX socket paths hold at most 107 bytes; QEMU's option parser reads a comma as a separator. */
function checkSocketPath(path: string, field: string): void {
  if (path.length > 107) throw new HyperfleetError("INVALID_ARGUMENT", `${field}: socket path ${path} is too long for a UNIX socket (max 107 bytes)`, { details: { field } });
  if (path.includes(",")) throw new HyperfleetError("INVALID_ARGUMENT", `${field}: socket path ${path} must not contain ','`, { details: { field } });
}

/**
 * Removes what an earlier run left at a socket path so QEMU can bind there. A caller may name any
 * path (the SDK example's /tmp/firecracker.sock): a file that is not a socket, or a socket some
 * process still listens on (another VM's), is refused rather than removed.
 */
async function removeStaleSocket(path: string): Promise<void> {
  let st;
  try {
    st = await lstat(path);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new HyperfleetError("INVALID_ARGUMENT", `${path} exists and is not a socket; remove it or choose another path`, { details: { path } });
  if (await listening(path)) throw new HyperfleetError("INVALID_ARGUMENT", `${path} is in use by a running process (another VM?); choose another path`, { details: { path } });
  await rm(path, { force: true });
}

function listening(path: string): Promise<boolean> {
  return new Promise((res) => {
    const s = connect(path);
    s.once("connect", () => {
      s.destroy();
      res(true);
    });
    s.once("error", () => res(false));
  });
}

/**
 * Adds the end of qemu.log to an error from a failed start: when QEMU exits on its own (no memory,
 * a missing kernel, a disk locked by another QEMU) its reason is there, not in what QMP saw.
 */
export async function withVmmLog(e: unknown, logPath: string): Promise<unknown> {
  const tail = await readLogTail(logPath);
  if (!tail) return e;
  const he = toHyperfleetError(e, "VMM_SPAWN_FAILED");
  return new HyperfleetError(he.code, `${he.message}; QEMU's log (${logPath}) ends with: ${tail}`, { cause: e, ...(he.details ? { details: he.details } : {}) });
}
