/**
 * A running (spawned or adopted) QEMU process. Exit is detected from the child's 'exit' event when
 * we spawned it. An adopted one is not our child and Node has no pidfd, so its death is noticed
 * from the QMP socket closing (the kernel closes it as the process exits), confirmed in /proc;
 * a slow /proc poll is only the backstop for a QMP connection that was never made or was lost.
 */
import type { ChildProcess } from "node:child_process";
import { connect } from "node:net";
import { readFile, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import { HyperfleetError } from "../../core/errors.js";
import type { SnapshotOptions, VmHandle, VmmExitDetection, VmSnapshot, VmmStatus } from "../../core/ports/vmm-driver.js";
import { readQemuArgv, type QemuPaths } from "./argv.js";
import { guestMemfdPath, migrateToFile, setIgnoreShared, sparseCopy, syncFile } from "./migration.js";
import { QmpClient } from "./qmp.js";
import { sleep } from "../../host/async.js";
import { isAlive, readLogTail } from "../process.js";

/** After the QMP socket closed, how long to look for the process to be gone before giving up. */
const QMP_CLOSE_CONFIRM_MS = 2_000;
/** The backstop /proc poll of an adopted VMM without a QMP connection. */
const POLL_MS = 250;

export class QemuHandle implements VmHandle {
  private exitStatus: VmmStatus | null = null;
  private readonly exitPromise: Promise<VmmStatus>;
  private qmp: QmpClient | null = null;
  /** Set when we close QMP ourselves: that close says nothing about the process. */
  private closingQmp = false;
  /** True while our QMP connection is open: QEMU's death closes it, so polling /proc can wait. */
  private qmpWatching = false;
  private noteExit: (by: VmmExitDetection) => void = () => undefined;
  private readonly spawned: boolean;

  constructor(
    readonly id: string,
    readonly pid: number,
    readonly runDir: string,
    readonly paths: QemuPaths & { metaFile: string; stderrLog: string },
    child: ChildProcess | null,
  ) {
    this.spawned = child !== null;
    this.exitPromise = child
      ? new Promise((resolve) => {
          const onExit = (code: number | null, signal: NodeJS.Signals | null) =>
            resolve((this.exitStatus = { state: "exited", pid, exitCode: code, signal, detectedBy: "child-exit" }));
          if (child.exitCode !== null || child.signalCode !== null) onExit(child.exitCode, child.signalCode);
          else child.once("exit", onExit);
        })
      : new Promise((resolve) => {
          this.noteExit = (by) => {
            if (!this.exitStatus) resolve((this.exitStatus = { state: "exited", pid, exitCode: null, signal: null, detectedBy: by }));
          };
          void this.pollExit();
        });
  }

  /** Backstop for an adopted VMM: /proc every 250 ms, only while no QMP connection would tell us sooner. */
  private async pollExit(): Promise<void> {
    while (!this.exitStatus) {
      await sleep(POLL_MS);
      if (this.qmpWatching || this.exitStatus) continue;
      if (!(await isAlive(this.pid))) this.noteExit("poll");
    }
  }

  get consoleLogPath(): string {
    return this.paths.consoleLog;
  }

  /** Attaches QMP; called once by the driver after spawn/adopt. */
  async attachQmp(timeoutMs: number): Promise<void> {
    const qmp = await QmpClient.connect(this.paths.qmpSocket, timeoutMs);
    this.qmp = qmp;
    this.qmpWatching = true;
    void qmp.closedPromise.then(() => {
      this.qmpWatching = false;
      // A child of ours reports its own exit; only an adopted VMM needs the socket's hint.
      if (!this.closingQmp && !this.spawned) void this.confirmExitAfterQmpClose();
    });
  }

  /** The last lines of QEMU's own stderr (bounded): why it refused to start or died. */
  logTail(): Promise<string> {
    return readLogTail(this.paths.stderrLog);
  }

  private async confirmExitAfterQmpClose(): Promise<void> {
    const deadline = Date.now() + QMP_CLOSE_CONFIRM_MS;
    // The socket closes while the kernel tears the process down; it is gone a moment later.
    while (!this.exitStatus && Date.now() < deadline) {
      if (!(await isAlive(this.pid))) return this.noteExit("qmp-close");
      await sleep(2);
    }
  }

  connectAgent(signal?: AbortSignal): Promise<Duplex> {
    return new Promise((resolve, reject) => {
      if (this.exitStatus) return reject(exitedError(this.id));
      const s = connect(this.paths.agentSocket);
      const onAbort = () => s.destroy(new Error("aborted"));
      signal?.addEventListener("abort", onAbort, { once: true });
      s.once("connect", () => {
        signal?.removeEventListener("abort", onAbort);
        s.setNoDelay(true);
        resolve(s);
      });
      s.once("error", (e) => {
        signal?.removeEventListener("abort", onAbort);
        reject(new HyperfleetError("AGENT_DISCONNECTED", `cannot connect to the agent socket of ${this.id}: ${e.message}`, { cause: e }));
      });
    });
  }

  async status(): Promise<VmmStatus> {
    if (this.exitStatus) return this.exitStatus;
    if (!(await isAlive(this.pid))) return { state: "exited", pid: this.pid };
    try {
      const s = await this.qmp?.execute<{ status: string; running: boolean }>("query-status");
      if (!s) return { state: "unknown", pid: this.pid };
      return { state: s.running ? "running" : PAUSED_STATES.has(s.status) ? "paused" : "unknown", pid: this.pid };
    } catch {
      return { state: this.exitStatus ? "exited" : "unknown", pid: this.pid };
    }
  }

  exited(): Promise<VmmStatus> {
    return this.exitPromise;
  }

  async requestStop(timeoutMs: number): Promise<void> {
    if (this.exitStatus) return;
    // ACPI power button first; if the guest ignores it, `quit` ends QEMU cleanly (disk caches flushed).
    await this.qmp?.execute("system_powerdown").catch(() => undefined);
    if (await this.waitExit(timeoutMs / 2)) return;
    await this.qmp?.execute("quit").catch(() => undefined);
    if (await this.waitExit(timeoutMs / 2)) return;
    throw new HyperfleetError("VMM_CONTROL_FAILED", `VMM of ${this.id} did not stop within ${timeoutMs} ms`);
  }

  async pause(): Promise<void> {
    await this.control("stop");
  }

  async resume(): Promise<void> {
    await this.control("cont");
  }

  /** How long the parts of the last snapshot took (ms), for benchmarks and logs. */
  lastSnapshotTimings: SnapshotTimings | null = null;

  /**
   * docs/adr/0009. Files are written under temporary names and renamed once complete, so a file
   * with its final name is whole. The guest is left paused (QEMU says "postmigrate").
   */
  async snapshot(opts: SnapshotOptions): Promise<VmSnapshot> {
    try {
      return await this.saveTo(opts);
    } catch (e) {
      // QMP refusals and file errors are the snapshot's failure; a dead VMM or a refused source say so themselves.
      if (e instanceof HyperfleetError && (e.code === "VMM_EXITED" || e.code.startsWith("SNAPSHOT_"))) throw e;
      throw new HyperfleetError("SNAPSHOT_FAILED", `snapshot of ${this.id} into ${opts.dir} failed: ${(e as Error).message}`, { cause: e });
    }
  }

  private async saveTo(opts: SnapshotOptions): Promise<VmSnapshot> {
    const qmp = this.qmpClient();
    const t0 = performance.now();
    const st = await qmp.execute<{ running: boolean; status: string }>("query-status");
    if (st.status === "postmigrate") {
      // Left frozen by an earlier snapshot (or one that failed at its end): QEMU refuses to migrate
      // again from there ("paused due to previous migration") until the guest has run. It runs a
      // few milliseconds, which the snapshot then includes.
      await qmp.execute("cont");
      await qmp.execute("stop");
    } else if (st.running) {
      // `stop` drains and flushes the disks: the disk copy below is what the guest wrote.
      await qmp.execute("stop");
    }
    const stateFile = join(opts.dir, "state");
    if (opts.purpose === "suspend") {
      await migrateToFile(qmp, `${stateFile}.tmp`);
      // The caller ends the VMM next: from then on this file is the only copy of the guest's memory.
      await syncFile(`${stateFile}.tmp`);
      await rename(`${stateFile}.tmp`, stateFile);
      this.lastSnapshotTimings = { stateMs: performance.now() - t0, memoryMs: 0, diskMs: 0 };
      return { dir: opts.dir, purpose: "suspend", stateFile, memoryFile: null, disk: null, sizeBytes: await allocatedBytes([stateFile]) };
    }
    const facts = readQemuArgv((await readFile(`/proc/${this.pid}/cmdline`, "utf8")).split("\0"));
    if (facts.rootDisk === null) throw new HyperfleetError("SNAPSHOT_FAILED", `cannot tell the root disk of ${this.id} from its command line`);
    // A clone's RAM is a private mapping of its snapshot's file, and that file is not the clone's
    // memory: its RAM goes into the stream instead (clones of it load it whole, unshared; ADR 0009).
    const memfd = facts.memory?.kind === "memfd" ? await guestMemfdPath(this.pid) : null;
    // Set either way: whoever restored a clone may have left it on, and its RAM must be in the stream.
    await setIgnoreShared(qmp, memfd !== null);
    try {
      await migrateToFile(qmp, `${stateFile}.tmp`);
    } finally {
      // Off again: a later suspend must carry the RAM in its stream.
      if (memfd !== null) await setIgnoreShared(qmp, false).catch(() => undefined);
    }
    await rename(`${stateFile}.tmp`, stateFile);
    const t1 = performance.now();
    let memoryFile: string | null = null;
    if (memfd !== null) {
      memoryFile = join(opts.dir, "memory");
      await sparseCopy(memfd, `${memoryFile}.tmp`);
      await rename(`${memoryFile}.tmp`, memoryFile);
    }
    const t2 = performance.now();
    const format = facts.rootDisk.format ?? "raw";
    const disk = { path: join(opts.dir, `disk.${format}`), format };
    await sparseCopy(facts.rootDisk.path, `${disk.path}.tmp`);
    await rename(`${disk.path}.tmp`, disk.path);
    this.lastSnapshotTimings = { stateMs: t1 - t0, memoryMs: t2 - t1, diskMs: performance.now() - t2 };
    const files = [stateFile, ...(memoryFile === null ? [] : [memoryFile]), disk.path];
    return { dir: opts.dir, purpose: "clone", stateFile, memoryFile, disk, sizeBytes: await allocatedBytes(files) };
  }

  /** The QMP connection (also the driver's, for a restore's migrate-incoming and cont). */
  qmpClient(): QmpClient {
    if (this.exitStatus) throw exitedError(this.id);
    if (!this.qmp) throw new HyperfleetError("VMM_CONTROL_FAILED", `no QMP connection to the VMM of ${this.id}`);
    return this.qmp;
  }

  private async control(command: string): Promise<void> {
    await this.qmpClient().execute(command);
  }

  async kill(): Promise<void> {
    if (this.exitStatus) return;
    try {
      process.kill(this.pid, "SIGKILL");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ESRCH") throw e;
    }
    await this.exitPromise;
  }

  detach(): void {
    this.closingQmp = true;
    this.qmp?.close();
    this.qmp = null;
  }

  async cleanup(opts: { all?: boolean } = {}): Promise<void> {
    this.detach();
    if (opts.all) {
      await rm(this.runDir, { recursive: true, force: true });
      return;
    }
    for (const p of [this.paths.qmpSocket, this.paths.agentSocket, this.paths.pidFile, this.paths.metaFile]) await rm(p, { force: true });
  }

  private async waitExit(ms: number): Promise<boolean> {
    const r = await Promise.race([this.exitPromise.then(() => true), sleep(ms).then(() => false)]);
    return r;
  }
}

/**
 * QEMU run states in which the guest is frozen and `cont` lets it go on: a snapshot leaves it in
 * postmigrate (finish-migrate while the stream is written).
 */
const PAUSED_STATES = new Set(["paused", "postmigrate", "finish-migrate"]);

export interface SnapshotTimings {
  /** Pause and device state (and the RAM, for a suspend). */
  stateMs: number;
  memoryMs: number;
  diskMs: number;
}

/** Bytes the files hold on disk (holes not counted). */
async function allocatedBytes(files: string[]): Promise<number> {
  let n = 0;
  for (const f of files) n += (await stat(f)).blocks * 512;
  return n;
}

function exitedError(id: string): HyperfleetError {
  return new HyperfleetError("VMM_EXITED", `the VMM process of ${id} has exited`);
}
