/**
 * The library entry point: one microVM, usable without a server. A thin facade over the pieces the
 * daemon uses too (vmm/spec.ts, the driver registry, Vm, the image cache), with Result values
 * instead of throws. It takes the options of the Firecracker SDK example (examples/sdk-example.ts).
 *
 * @example
 * const machine = new Machine({ vcpuCount: 1, memSizeMib: 256 });
 * (await machine.start()).unwrap();
 * const r = (await machine.exec(["uname", "-a"])).unwrap();
 * console.log(r.stdout);
 * (await machine.shutdown()).unwrap();
 */
import { existsSync } from "node:fs";
import type { CachedImage } from "../images/index.js";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { ulid } from "ulid";
import type { AgentClient, ExecOptions as AgentExecOptions, FileStat } from "../agent/client.js";
import { HyperfleetError } from "../core/errors.js";
import { attempt, type Result } from "../core/result.js";
import type { ExposedPort, ExposedPortRequest, MachineNetwork } from "../core/machine.js";
import type { AttachedNetwork, VmNetworkSpec } from "../core/ports/network.js";
import type { VmmDriver, VmmStatus, VmSpec } from "../core/ports/vmm-driver.js";
import { LibraryNetwork, type LibraryNetworkOptions, type NetworkRequest } from "../network/library-network.js";
import { networkedBoot } from "../network/networked-boot.js";
import { hostTscKhz } from "../vmm/host.js";
import { buildVmSpec, devicesFor, needsAssets, resolveBootPaths } from "../vmm/spec.js";
import { Vm } from "../vmm/vm.js";
import { DEFAULT_DATA_DIR, imagesIn, wiringFor } from "./wiring.js";

export type { FileStat } from "../agent/client.js";
export type { ExposedPort, ExposedPortRequest, MachineNetwork } from "../core/machine.js";

/** A library machine's network policy; every field optional (internet on, no lists, no private network). */
export interface MachineNetworkOptions {
  /** Egress to anything not denied (NAT through the host). Default true. */
  internet?: boolean;
  /** CIDRs reachable even when `internet` is false or denied below (never other VMs). */
  allowOut?: string[];
  /** CIDRs never reachable (unless also in allowOut). */
  denyOut?: string[];
  /** Machines with the same name reach each other by their `network.ip`. */
  privateNetwork?: string | null;
}

/** Host-wide settings of library networks; every process sharing a data dir must agree on them. */
export interface MachineNetworkHost {
  /** Default 10.211.0.0/16 (the daemon's is 10.210.0.0/16). */
  subnet?: string;
  /** Host ports for exposed ports that name none, inclusive. Default 31000-31999. */
  portRange?: { min: number; max: number };
  /** host_ip of exposed ports that name none. Default 127.0.0.1. */
  portsBind?: string;
  /** Resolvers the guest uses. Default: the host's (resolv.conf; behind systemd's stub, its upstreams). */
  dns?: string[];
}

export interface MachineOptions {
  /** Defaults to `vm_<ULID>`. */
  id?: string;
  vcpuCount: number;
  memSizeMib: number;
  /** Kernel (bzImage or ELF vmlinux). Default: the vmlinux from the guest assets. */
  kernelImagePath?: string;
  initrdPath?: string;
  /**
   * Full kernel command line. Default: the measured fast-boot set (src/vmm/kernel-args.ts). As
   * Firecracker does for a root drive, `root=/dev/vda rw` is added when it names no root; under
   * QEMU, whose only console is the virtio one, `console=hvc0` is added when its last console is
   * another (the example's `console=ttyS0`), so output still reaches consoleLogPath.
   */
  kernelArgs?: string;
  /** Base root disk (raw ext4). The VM writes to its own copy-on-write disk; the base is never modified. Not with imageRef. */
  rootfsPath?: string;
  /**
   * An OCI image (`alpine:latest`, `127.0.0.1:5000/app:v1`) as the root disk, pulled at the first
   * start() by the daemon's image code (src/images: our agent goes in as /sbin/hf-agent) with the
   * daemon's registry settings from the environment (HYPERFLEET_INSECURE_REGISTRIES,
   * HYPERFLEET_REGISTRY_MIRRORS), into imageCacheDir. The image's main process is not started: this
   * is a root disk, exec() runs what you ask.
   */
  imageRef?: string;
  /** Size of the image's root disk; default: its content plus max(50 %, 64 MiB). Needs imageRef. */
  imageSizeMib?: number;
  /**
   * Where pulled images are cached. Default `<dataDir>/library-images`: not the daemon's cache
   * (`<dataDir>/images`), since one cache dir takes one process (src/images/README.md).
   */
  imageCacheDir?: string;
  /**
   * Where the VMM's control socket goes (Firecracker: its API socket; QEMU: its QMP socket).
   * Default `<runDir>/qmp.sock`. A stale socket there is removed; a live one or another file is refused.
   */
  socketPath?: string;
  /**
   * The agent channel's host socket (`uds_path`) and the guest's vsock CID (`guest_cid`, >= 3).
   * Firecracker: the hybrid vsock, exec() connects through it. QEMU has no vsock here (no
   * vhost-vsock): its agent channel is a virtio-serial port whose host socket goes to uds_path
   * instead, and guest_cid is unused. Default `<runDir>/agent.sock`.
   */
  vsock?: { guest_cid: number; uds_path: string };
  /** Where guest assets and per-VM state live. Default /var/lib/hyperfleet. */
  dataDir?: string;
  /** This VM's directory (sockets, pidfile, console log, disk overlay). Default <dataDir>/vms/<id>. */
  runDir?: string;
  /** Default: QEMU, with KVM only if a probe boot succeeds, else TCG. */
  driver?: VmmDriver;
  /** Boot timeout (spawn until the agent answers). Default 30 s. */
  bootTimeoutMs?: number;
  /**
   * The VM's network (docs/adr/0008): its own network namespace, a NIC whose guest sees
   * 169.254.0.21, NAT to the host, and this egress policy. Default `false`, no NIC at all: a
   * network changes the host (it needs root, turns on net.ipv4.ip_forward, adds the nft table
   * `inet hyperfleet_lib`, a namespace and an `hfl<n>` veth per VM), so it is asked for, never implied.
   */
  network?: MachineNetworkOptions | false;
  /** Host ports forwarded to guest ports (needs `network`); assigned at the first start(). */
  exposedPorts?: ExposedPortRequest[];
  /** Subnet, port range, bind address and DNS of library networks (see MachineNetworkHost). */
  networkHost?: MachineNetworkHost;
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
  private vm: Vm | null = null;
  /** The network claimed at the first start, kept across stop/start until shutdown, kill or destroy. */
  private net: VmNetworkSpec | null = null;
  private lib: LibraryNetwork | null = null;
  /** The pulled imageRef, held in the cache (never evicted) from the first start until destroy. */
  private image: CachedImage | null = null;

  constructor(private readonly opts: MachineOptions) {
    this.id = opts.id ?? `vm_${ulid()}`;
    this.dataDir = opts.dataDir ?? DEFAULT_DATA_DIR;
    this.runDir = opts.runDir ?? join(this.dataDir, "vms", this.id);
  }

  /** Re-attaches to a VM left running by an earlier process; null when its VMM is gone. */
  static async adopt(opts: MachineOptions & { id: string; runDir: string }): Promise<Machine | null> {
    const m = new Machine(opts);
    // The VMM is alive but the agent may not answer: the VM is kept anyway, so it can be stopped.
    m.vm = await Vm.adopt(await m.driver(), opts.id, opts.runDir);
    if (!m.vm) return null;
    // Its network lease names the process that started it: this one owns it from now on.
    if (existsSync(join(m.dataDir, "network", "slots"))) m.net = await m.libraryNetwork().adopt(m.id);
    return m;
  }

  /** The VM's network (address, gateway, policy, DNS); null without one or before the first start. */
  get network(): MachineNetwork | null {
    return this.net?.network ?? null;
  }

  /** Host ports forwarded to the guest, as assigned at the first start. */
  get exposedPorts(): ExposedPort[] {
    return [...(this.net?.exposedPorts ?? [])];
  }

  get pid(): number | null {
    return this.vm?.pid ?? null;
  }

  get consoleLogPath(): string {
    return join(this.runDir, "console.log");
  }

  /** Boots the VM and waits until the guest agent answers. */
  start(opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<Result<void>> {
    return attempt(async () => {
      if (this.vm && (await this.vm.status()).state !== "exited") throw new HyperfleetError("INVALID_STATE_TRANSITION", `machine ${this.id} is already running`);
      checkOptions(this.opts);
      const rootfsPath = await this.imageDisk(opts.signal);
      try {
        const attached = await this.networkUp();
        const spec = await this.buildSpec(attached, rootfsPath);
        this.vm = await Vm.boot(await this.driver(), spec, opts.timeoutMs ?? this.opts.bootTimeoutMs ?? 30_000, opts.signal);
        if (this.net !== null && this.vm.pid !== null) await this.libraryNetwork().recordVmm(this.id, this.vm.pid);
      } catch (e) {
        // No VMM is left after a failed start: the namespace, rules and leases (claimed anew at the
        // next start) go with it.
        await this.releaseNetwork().catch(() => {});
        throw e;
      }
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
    return this.vm?.agent ?? null;
  }

  /**
   * Graceful stop: the agent powers the guest off (processes get SIGTERM, disks are synced); if
   * that does not end the VM in time the VMM is asked to stop, and finally killed.
   */
  shutdown(opts: { timeoutMs?: number } = {}): Promise<Result<void>> {
    return attempt(async () => {
      await this.vm?.shutdown(opts.timeoutMs ?? 10_000);
      await this.releaseNetwork();
    });
  }

  /**
   * Lets go of the VM without stopping it: it keeps running, with its sockets and files, and
   * Machine.adopt (in this process or another) re-attaches to it. This Machine is done with it.
   */
  detach(): void {
    this.vm?.detach();
    this.vm = null;
    // Its network lease goes with the VM, to whoever adopts it: this Machine must not release it.
    this.net = null;
  }

  /** SIGKILLs the VMM process (and takes its network down). */
  kill(): Promise<Result<void>> {
    return attempt(async () => {
      await this.vm?.kill();
      await this.releaseNetwork();
    });
  }

  async status(): Promise<VmmStatus> {
    return this.vm ? this.vm.status() : { state: "exited", pid: null };
  }

  /** Resolves when the VMM process is gone (including when it is killed from outside). */
  exited(): Promise<VmmStatus> {
    return this.vm ? this.vm.exited() : Promise.resolve({ state: "exited", pid: null });
  }

  /** Kills the VM if needed and removes everything it had on disk. */
  async destroy(): Promise<void> {
    await this.vm?.kill().catch(() => this.vm?.release());
    await this.releaseNetwork();
    await rm(this.runDir, { recursive: true, force: true });
    // The VM's disk lay on the image's: only now may the cache evict it.
    if (this.image !== null) {
      const digest = this.image.digest;
      this.image = null;
      await (await imagesIn(this.imageCacheDir)).release(digest);
    }
  }

  // --- internals ---

  private requireAgent(): AgentClient {
    const agent = this.vm?.agent;
    if (!agent) throw new HyperfleetError("MACHINE_NOT_RUNNING", `machine ${this.id} is not running (no agent connection); start it first`);
    return agent;
  }

  private async driver(): Promise<VmmDriver> {
    return this.opts.driver ?? wiringFor(this.dataDir).registry.driver();
  }

  private libraryNetwork(): LibraryNetwork {
    const h = this.opts.networkHost ?? {};
    const o: LibraryNetworkOptions = { dataDir: this.dataDir, ...h };
    this.lib ??= new LibraryNetwork(o);
    return this.lib;
  }

  /** Claims the network at the first start (kept after), brings it up; null without one. */
  private async networkUp(): Promise<AttachedNetwork | null> {
    const want = this.opts.network ?? false;
    if (want === false) {
      if ((this.opts.exposedPorts ?? []).length > 0) {
        throw new HyperfleetError("INVALID_ARGUMENT", "exposedPorts needs a network: set `network: {}` (or a policy) as well", { details: { field: "exposedPorts" } });
      }
      return null;
    }
    const request: NetworkRequest = { ...want };
    this.net ??= await this.libraryNetwork().claim(this.id, request, this.opts.exposedPorts ?? []);
    return this.libraryNetwork().up(this.net);
  }

  /** Takes the network down and gives its slot and ports back; only once no VMM uses it. */
  private async releaseNetwork(): Promise<void> {
    if (this.net === null) return;
    if (this.vm && (await this.vm.status()).state !== "exited") return;
    await this.libraryNetwork().release(this.id);
    this.net = null;
  }

  private get imageCacheDir(): string {
    return this.opts.imageCacheDir ?? join(this.dataDir, "library-images");
  }

  /** The imageRef's root disk, pulled at the first start (and held); null without an imageRef. */
  private async imageDisk(signal?: AbortSignal): Promise<string | null> {
    const ref = this.opts.imageRef;
    if (ref === undefined) return null;
    this.image ??= await (await imagesIn(this.imageCacheDir)).pull(ref, {
      acquire: true,
      ...(this.opts.imageSizeMib !== undefined && { imageSizeMib: this.opts.imageSizeMib }),
      ...(signal !== undefined && { signal }),
    });
    return this.image.diskPath;
  }

  private async buildSpec(attached: AttachedNetwork | null, imageDisk: string | null): Promise<VmSpec> {
    const o = { ...this.opts, ...(imageDisk !== null && { rootfsPath: imageDisk }) };
    const kind = (await this.driver()).kind;
    const nb = attached === null ? null : networkedBoot(attached, this.net?.network.dns ?? []);
    // Loaded even when nothing must come from them, if they exist: a kernelImagePath that is the
    // assets' own kernel still gets our initramfs (resolveBootPaths).
    const assets = needsAssets(o) ? await wiringFor(this.dataDir).assets() : await wiringFor(this.dataDir).assets().catch(() => null);
    // The agent channel (vsock or virtio-serial) and the NIC, if any, pick the initramfs's drivers.
    const devices = devicesFor(kind, nb?.nics);
    const boot = resolveBootPaths(o, assets, devices);
    // The VM's disk is kept across stop/start, made once. A caller's own driver is QEMU's today.
    const rootDisk = await wiringFor(this.dataDir).registry.disks.rootDisk(boot.rootfsPath, this.runDir);
    const spec = buildVmSpec({
      id: this.id,
      vcpuCount: o.vcpuCount,
      memSizeMib: o.memSizeMib,
      boot,
      rootDisk,
      devices,
      ...(nb !== null && { guestNet: nb.guestNet }),
      runDir: this.runDir,
      sockets: {
        ...(o.socketPath !== undefined && { controlSocket: o.socketPath }),
        ...(o.vsock !== undefined && { agentSocket: o.vsock.uds_path, guestCid: o.vsock.guest_cid }),
      },
      tscKhz: hostTscKhz(),
    });
    return nb === null ? spec : { ...spec, netns: nb.netns };
  }
}

function invalid(field: string, message: string): HyperfleetError {
  return new HyperfleetError("INVALID_ARGUMENT", `${field}: ${message}`, { details: { field } });
}

/** The option combinations no VM can have, refused before anything is pulled or spawned. */
function checkOptions(o: MachineOptions): void {
  if (o.imageRef !== undefined && o.rootfsPath !== undefined) throw invalid("imageRef", "give imageRef or rootfsPath, not both (both are the root disk)");
  if (o.imageSizeMib !== undefined && o.imageRef === undefined) throw invalid("imageSizeMib", "sizes the disk of imageRef; give an imageRef too");
  if (o.imageSizeMib !== undefined && (!Number.isInteger(o.imageSizeMib) || o.imageSizeMib < 1)) throw invalid("imageSizeMib", `must be a positive whole number of MiB, got ${o.imageSizeMib}`);
  if (o.vsock !== undefined) {
    const cid = o.vsock.guest_cid;
    // 0-2 are the hypervisor, local and host addresses.
    if (!Number.isInteger(cid) || cid < 3 || cid > 0xffffffff - 1) throw invalid("vsock.guest_cid", `must be a whole number from 3 to 4294967294, got ${cid}`);
    if (typeof o.vsock.uds_path !== "string" || o.vsock.uds_path === "") throw invalid("vsock.uds_path", "must be a path");
  }
  if (o.socketPath !== undefined && o.socketPath === "") throw invalid("socketPath", "must be a path");
}
