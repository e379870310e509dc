/**
 * A running (spawned or adopted) Firecracker process. Exit is detected from the child's 'exit'
 * event when we spawned it (with its code or signal), else by polling /proc: Firecracker's API is
 * one HTTP connection per request, so there is no long-lived connection whose close would tell.
 */
import type { ChildProcess } from "node:child_process";
import { rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import { HyperfleetError } from "../../core/errors.js";
import type { DiskSpec, SnapshotOptions, VmHandle, VmmExitDetection, VmSnapshot, VmmStatus } from "../../core/ports/vmm-driver.js";
import { sleep } from "../../host/async.js";
import { isAlive, readLogTail } from "../process.js";
import { sparseCopy, syncFile } from "../qemu/migration.js";
import { FirecrackerApi } from "./api.js";
import { pauseVm, resumeVm, sendCtrlAltDel, snapshotCreate, type FcPaths } from "./config.js";
import { AGENT_VSOCK_PORT, connectHybridVsock } from "./vsock.js";

/** The /proc poll of a VMM that is not our child. */
const POLL_MS = 250;
/** How long connectAgent keeps retrying the hybrid vsock while the guest's agent is not listening yet. */
const AGENT_CONNECT_MS = 60_000;

/** Every file of a Firecracker VM on the host side (the config's, plus ours). */
export interface FcHostPaths extends FcPaths {
  /** Written by the driver: what adoption needs. */
  metaFile: string;
  pidFile: string;
  /** Firecracker's stdout and stderr (what it says before its logger is configured). */
  outLog: string;
}

export class FirecrackerHandle implements VmHandle {
  private exitStatus: VmmStatus | null = null;
  private readonly exitPromise: Promise<VmmStatus>;
  private detached = false;
  /** The API socket's client (also the driver's, which configures through it with its own error code). */
  readonly api: FirecrackerApi;

  constructor(
    readonly id: string,
    readonly pid: number,
    readonly runDir: string,
    readonly paths: FcHostPaths,
    /** The VM's root disk as the host sees it (absolute): what a clone snapshot freezes. */
    readonly rootDisk: DiskSpec | null,
    child: ChildProcess | null,
  ) {
    this.api = new FirecrackerApi(paths.apiSocket);
    this.exitPromise = child
      ? new Promise((resolve) => {
          const onExit = (code: number | null, signal: NodeJS.Signals | null) =>
            resolve((this.exitStatus = { state: "exited", pid, exitCode: code, signal, detectedBy: "child-exit" }));
          if (child.exitCode !== null || child.signalCode !== null) onExit(child.exitCode, child.signalCode);
          else child.once("exit", onExit);
        })
      : this.pollExit();
  }

  private async pollExit(): Promise<VmmStatus> {
    const note = (by: VmmExitDetection): VmmStatus => (this.exitStatus = { state: "exited", pid: this.pid, exitCode: null, signal: null, detectedBy: by });
    while (await isAlive(this.pid)) await sleep(POLL_MS);
    return note("poll");
  }

  get consoleLogPath(): string {
    return this.paths.console;
  }

  /** The end of Firecracker's log file and of its own output (bounded): why it refused or died. */
  async logTail(): Promise<string> {
    const parts = [await readLogTail(this.paths.log), await readLogTail(this.paths.outLog)].filter((s) => s !== "");
    return parts.join("\n");
  }

  /**
   * A stream to the guest agent through the hybrid vsock (`CONNECT 1024`), retried while the guest
   * is not listening yet; gives up at once when the VMM exits.
   */
  async connectAgent(signal?: AbortSignal): Promise<Duplex> {
    if (this.exitStatus) throw exitedError(this.id);
    const ac = new AbortController();
    const onOuter = () => ac.abort(signal?.reason);
    if (signal?.aborted) onOuter();
    else signal?.addEventListener("abort", onOuter, { once: true });
    void this.exitPromise.then(() => ac.abort(exitedError(this.id)));
    try {
      const s = await connectHybridVsock(this.paths.vsockUds, AGENT_VSOCK_PORT, { timeoutMs: AGENT_CONNECT_MS, signal: ac.signal });
      s.setNoDelay(true);
      return s;
    } catch (e) {
      if (this.exitStatus) throw exitedError(this.id);
      throw e;
    } finally {
      signal?.removeEventListener("abort", onOuter);
    }
  }

  async status(): Promise<VmmStatus> {
    if (this.exitStatus) return this.exitStatus;
    if (!(await isAlive(this.pid))) return { state: "exited", pid: this.pid };
    try {
      const { body } = await this.api.send({ method: "GET", path: "/" }, { timeoutMs: 2_000 });
      const state = (body as { state?: unknown } | null)?.state;
      return { state: state === "Running" ? "running" : state === "Paused" ? "paused" : "unknown", pid: this.pid };
    } catch {
      return { state: this.exitStatus ? "exited" : "unknown", pid: this.pid };
    }
  }

  exited(): Promise<VmmStatus> {
    return this.exitPromise;
  }

  /**
   * Firecracker has no ACPI: Ctrl+Alt+Del through the i8042 is its one graceful stop, and a guest
   * booted with `reboot=k` resets, which ends Firecracker. The Vm layer has already asked the
   * agent to power off; if the process is still there after timeoutMs this rejects and the caller
   * kills it (the same contract as QEMU's).
   */
  async requestStop(timeoutMs: number): Promise<void> {
    if (this.exitStatus) return;
    await this.api.send(sendCtrlAltDel(), { timeoutMs: Math.min(timeoutMs, 5_000) }).catch(() => undefined);
    const gone = await Promise.race([this.exitPromise.then(() => true), sleep(timeoutMs).then(() => false)]);
    if (!gone) throw new HyperfleetError("VMM_CONTROL_FAILED", `Firecracker of ${this.id} did not stop within ${timeoutMs} ms of Ctrl+Alt+Del`);
  }

  async pause(): Promise<void> {
    this.requireRunning();
    // Pausing a paused VM is no error by the port; asking first keeps that true whatever this
    // Firecracker build answers to a second pause.
    if ((await this.status()).state === "paused") return;
    await this.api.send(pauseVm());
  }

  async resume(): Promise<void> {
    this.requireRunning();
    await this.api.send(resumeVm());
  }

  /**
   * Pause, then a Full `PUT /snapshot/create` into `opts.dir` (state and memory in their own files,
   * under temporary names until complete). A clone also freezes the root disk by a sparse copy:
   * Firecracker restores drives from the paths it recorded, and each clone must open its own
   * (driver.ts, "Disks"). The guest is left paused.
   */
  async snapshot(opts: SnapshotOptions): Promise<VmSnapshot> {
    try {
      return await this.saveTo(opts);
    } catch (e) {
      if (e instanceof HyperfleetError && (e.code === "VMM_EXITED" || e.code.startsWith("SNAPSHOT_"))) throw e;
      throw new HyperfleetError("SNAPSHOT_FAILED", `snapshot of ${this.id} into ${opts.dir} failed: ${(e as Error).message}`, { cause: e });
    }
  }

  private async saveTo(opts: SnapshotOptions): Promise<VmSnapshot> {
    this.requireRunning();
    if (opts.purpose === "clone" && this.rootDisk === null) throw new HyperfleetError("SNAPSHOT_FAILED", `the root disk of ${this.id} is not recorded in ${this.paths.metaFile}`);
    // Pausing first also lets the virtio queues drain: the disk copy below is what the guest wrote.
    if ((await this.status()).state !== "paused") await this.api.send(pauseVm(), { code: "SNAPSHOT_FAILED" });
    const stateFile = join(opts.dir, "state");
    const memoryFile = join(opts.dir, "memory");
    await this.api.send(snapshotCreate(`${stateFile}.tmp`, `${memoryFile}.tmp`), { code: "SNAPSHOT_FAILED", timeoutMs: 120_000 });
    if (opts.purpose === "suspend") {
      // The caller ends the VMM next: from then on these files are the only copy of the guest.
      for (const f of [stateFile, memoryFile]) await syncFile(`${f}.tmp`);
    }
    await rename(`${stateFile}.tmp`, stateFile);
    await rename(`${memoryFile}.tmp`, memoryFile);
    let disk: DiskSpec | null = null;
    if (opts.purpose === "clone") {
      disk = { path: join(opts.dir, "disk.raw"), format: "raw" };
      await sparseCopy(this.rootDisk!.path, `${disk.path}.tmp`);
      await rename(`${disk.path}.tmp`, disk.path);
    }
    const files = [stateFile, memoryFile, ...(disk ? [disk.path] : [])];
    return { dir: opts.dir, purpose: opts.purpose, stateFile, memoryFile, disk, sizeBytes: await allocatedBytes(files) };
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

  /** No connection is held between requests, so letting go only means sending nothing more. */
  detach(): void {
    this.detached = true;
  }

  async cleanup(opts: { all?: boolean } = {}): Promise<void> {
    this.detach();
    // Sockets the caller named may live outside the run dir: they go either way.
    for (const p of [this.paths.apiSocket, this.paths.vsockUds, this.paths.pidFile, this.paths.metaFile, this.paths.metrics]) await rm(p, { force: true });
    if (opts.all) await rm(this.runDir, { recursive: true, force: true });
  }

  private requireRunning(): void {
    if (this.exitStatus) throw exitedError(this.id);
    if (this.detached) throw new HyperfleetError("VMM_CONTROL_FAILED", `the handle of ${this.id} was detached`);
  }
}

async function allocatedBytes(files: string[]): Promise<number> {
  let n = 0;
  for (const f of files) n += (await stat(f)).blocks * 512;
  return n;
}

export function exitedError(id: string): HyperfleetError {
  return new HyperfleetError("VMM_EXITED", `the Firecracker process of ${id} has exited`);
}
