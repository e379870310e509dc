/**
 * The library entry point: one microVM, usable without a server.
 *
 * @example
 * const machine = new Machine({ vcpuCount: 1, memSizeMib: 256 });
 * (await machine.start()).unwrap();
 * const r = (await machine.exec(["uname", "-a"])).unwrap();
 * console.log(r.stdout);
 * (await machine.shutdown()).unwrap();
 */
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { ulid } from "ulid";
import { AgentClient, type ExecOptions as AgentExecOptions, type FileStat } from "../agent/client.js";
import { HyperfleetError } from "../core/errors.js";
import { attempt, type Result } from "../core/result.js";
import type { VmHandle, VmmDriver, VmmStatus, VmSpec } from "../core/ports/vmm-driver.js";
import { connectAgent } from "../vmm/boot.js";
import { bootVm } from "../vmm/boot.js";
import { buildKernelArgs } from "../vmm/kernel-args.js";
import { hostTscKhz } from "../vmm/host.js";
import { createOverlay } from "../vmm/disk.js";
import { initramfsFor } from "../assets/index.js";
import { defaultDriver, DEFAULT_DATA_DIR, resolveGuestAssets } from "./defaults.js";

export type { FileStat } from "../agent/client.js";

export interface MachineOptions {
  /** Defaults to `vm_<ULID>`. */
  id?: string;
  vcpuCount: number;
  memSizeMib: number;
  /** Kernel (bzImage or ELF vmlinux). Default: the vmlinux from the guest assets. */
  kernelImagePath?: string;
  initrdPath?: string;
  /** Full kernel command line. Default: the measured fast-boot set (src/vmm/kernel-args.ts). */
  kernelArgs?: string;
  /** Base root disk (raw ext4). The VM writes to its own qcow2 overlay; the base is never modified. */
  rootfsPath?: string;
  /** Where guest assets and per-VM state live. Default /var/lib/hyperfleet. */
  dataDir?: string;
  /** This VM's directory (sockets, pidfile, console log, disk overlay). Default <dataDir>/vms/<id>. */
  runDir?: string;
  /** Default: QEMU, with KVM only if a probe boot succeeds, else TCG. */
  driver?: VmmDriver;
  /** Boot timeout (spawn until the agent answers). Default 30 s. */
  bootTimeoutMs?: number;
}

export interface ExecResult {
  exitCode: number | null;
  signal: number | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
  /** Output beyond maxOutputBytes was dropped. */
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  durationMs: number;
}

/**
 * env, cwd, user, stdin; timeoutMs: the command is killed after it and fails with EXEC_TIMEOUT;
 * maxOutputBytes: stdout and stderr are each kept up to it (see ExecResult's *Truncated);
 * signal: kills the command.
 */
export type ExecOptions = Pick<AgentExecOptions, "env" | "cwd" | "user" | "timeoutMs" | "stdin" | "maxOutputBytes" | "signal">;

export class Machine {
  readonly id: string;
  readonly runDir: string;
  private readonly dataDir: string;
  private handle: VmHandle | null = null;
  private agent: AgentClient | null = null;

  constructor(private readonly opts: MachineOptions) {
    this.id = opts.id ?? `vm_${ulid()}`;
    this.dataDir = opts.dataDir ?? DEFAULT_DATA_DIR;
    this.runDir = opts.runDir ?? join(this.dataDir, "vms", this.id);
  }

  /** Re-attaches to a VM left running by an earlier process; null when its VMM is gone. */
  static async adopt(opts: MachineOptions & { id: string; runDir: string }): Promise<Machine | null> {
    const m = new Machine(opts);
    const driver = opts.driver ?? (await defaultDriver(m.dataDir));
    const handle = await driver.adopt(opts.id, opts.runDir);
    if (!handle) return null;
    m.handle = handle;
    try {
      m.attachAgent(await connectAgent(handle, 10_000));
    } catch {
      // The VMM is alive but the agent does not answer: keep the handle so it can be stopped.
    }
    return m;
  }

  get pid(): number | null {
    return this.handle?.pid ?? null;
  }

  get consoleLogPath(): string {
    return join(this.runDir, "console.log");
  }

  /** Boots the VM and waits until the guest agent answers. */
  start(opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<Result<void>> {
    return attempt(async () => {
      if (this.handle && (await this.handle.status()).state !== "exited") throw new HyperfleetError("INVALID_STATE_TRANSITION", `machine ${this.id} is already running`);
      const spec = await this.buildSpec();
      const driver = this.opts.driver ?? (await defaultDriver(this.dataDir));
      const vm = await bootVm(driver, spec, opts.timeoutMs ?? this.opts.bootTimeoutMs ?? 30_000, opts.signal);
      this.handle = vm.handle;
      this.attachAgent(vm.agent);
    });
  }

  exec(command: string[], opts: ExecOptions = {}): Promise<Result<ExecResult>> {
    return attempt(async () => {
      const r = await this.requireAgent().exec(command, opts);
      const result: ExecResult = {
        exitCode: r.exitCode,
        signal: r.signal,
        timedOut: r.timedOut,
        stdout: r.stdout.toString("utf8"),
        stderr: r.stderr.toString("utf8"),
        stdoutTruncated: r.stdoutTruncated,
        stderrTruncated: r.stderrTruncated,
        durationMs: r.durationMs,
      };
      if (r.timedOut) {
        throw new HyperfleetError("EXEC_TIMEOUT", `'${command.join(" ")}' did not finish within ${opts.timeoutMs} ms and was killed`, { details: { ...result } });
      }
      return result;
    });
  }

  /** signal: stops the upload (the guest removes its temp file) and fails at once; fsync: on disk before it resolves. */
  writeFile(path: string, data: Buffer | string, opts: { mode?: number; mkdirs?: boolean; fsync?: boolean; signal?: AbortSignal } = {}): Promise<Result<{ size: number }>> {
    return attempt(async () => ({ size: await this.requireAgent().writeFile(path, typeof data === "string" ? Buffer.from(data) : data, opts) }));
  }

  /** maxBytes: a larger file fails with FILE_TOO_LARGE; signal: cancels the read and fails at once. */
  readFile(path: string, opts: { maxBytes?: number; signal?: AbortSignal } = {}): Promise<Result<Buffer>> {
    return attempt(() => this.requireAgent().readFile(path, { maxBytes: opts.maxBytes, signal: opts.signal }));
  }

  stat(path: string): Promise<Result<FileStat>> {
    return attempt(() => this.requireAgent().stat(path));
  }

  remove(path: string, opts: { recursive?: boolean } = {}): Promise<Result<void>> {
    return attempt(() => this.requireAgent().remove(path, opts));
  }

  mkdir(path: string, opts: { parents?: boolean; mode?: number } = {}): Promise<Result<void>> {
    return attempt(() => this.requireAgent().mkdir(path, opts));
  }

  /** Direct access to the agent connection (streaming exec, ping), for advanced use. */
  get agentClient(): AgentClient | null {
    return this.agent;
  }

  /**
   * Graceful stop: the agent powers the guest off (processes get SIGTERM, disks are synced); if
   * that does not end the VM in time the VMM is asked to stop, and finally killed.
   */
  shutdown(opts: { timeoutMs?: number } = {}): Promise<Result<void>> {
    return attempt(async () => {
      const h = this.handle;
      if (!h) return;
      const timeoutMs = opts.timeoutMs ?? 10_000;
      const deadline = Date.now() + timeoutMs;
      if (this.agent && !this.agent.closed) await this.agent.shutdown().catch(() => undefined);
      const graceful = await Promise.race([h.exited().then(() => true), delay(Math.max(0, deadline - Date.now())).then(() => false)]);
      if (!graceful) await h.requestStop(Math.max(1_000, deadline - Date.now())).catch(() => h.kill());
      await this.release();
    });
  }

  /** SIGKILLs the VMM process. */
  kill(): Promise<Result<void>> {
    return attempt(async () => {
      await this.handle?.kill();
      await this.release();
    });
  }

  async status(): Promise<VmmStatus> {
    return this.handle ? this.handle.status() : { state: "exited", pid: null };
  }

  /** Resolves when the VMM process is gone (including when it is killed from outside). */
  exited(): Promise<VmmStatus> {
    return this.handle ? this.handle.exited() : Promise.resolve({ state: "exited", pid: null });
  }

  /** Kills the VM if needed and removes everything it had on disk. */
  async destroy(): Promise<void> {
    await this.handle?.kill().catch(() => undefined);
    await this.release();
    await rm(this.runDir, { recursive: true, force: true });
  }

  // --- internals ---

  private attachAgent(agent: AgentClient): void {
    this.agent = agent;
    agent.onClose(() => {
      if (this.agent === agent) this.agent = null;
    });
  }

  private requireAgent(): AgentClient {
    if (!this.agent || this.agent.closed) throw new HyperfleetError("MACHINE_NOT_RUNNING", `machine ${this.id} is not running (no agent connection); start it first`);
    return this.agent;
  }

  private async release(): Promise<void> {
    this.agent?.close();
    this.agent = null;
    await this.handle?.cleanup().catch(() => undefined);
  }

  private async buildSpec(): Promise<VmSpec> {
    const o = this.opts;
    const needAssets = !o.kernelImagePath || !o.rootfsPath || (!o.initrdPath && !o.kernelImagePath);
    const assets = needAssets ? await resolveGuestAssets(this.dataDir) : null;
    await mkdir(this.runDir, { recursive: true, mode: 0o700 });
    const base = o.rootfsPath ?? assets!.rootfs;
    const overlay = join(this.runDir, "rootfs.qcow2");
    // The overlay is the VM's disk: kept across stop/start, created once.
    await createOverlay(base, overlay);
    // No NICs or vsock: the Machine class attaches neither (yet).
    const initrd = o.initrdPath ?? (o.kernelImagePath ? undefined : initramfsFor(assets!, { nics: 0, vsock: false }));
    return {
      id: this.id,
      vcpus: o.vcpuCount,
      memMib: o.memSizeMib,
      kernelPath: o.kernelImagePath ?? assets!.vmlinux,
      ...(initrd ? { initrdPath: initrd } : {}),
      kernelArgs: o.kernelArgs ?? buildKernelArgs({ hostname: this.id.slice(0, 63), tscKhz: hostTscKhz() ?? undefined }),
      rootDisk: { path: overlay, format: "qcow2" },
      runDir: this.runDir,
    };
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
