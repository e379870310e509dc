/**
 * The VMM side of the stand-in: the resources a request configures and Firecracker's pre-boot /
 * post-boot rules (rpc_interface.rs: PrebootApiController and RuntimeApiController). Requests reach
 * it already parsed and checked against the API definition (api.ts); what is left here is what
 * Firecracker decides from its state and the host: files it opens, the boot, pause, snapshots.
 */
import { closeSync, constants, openSync, writeSync } from "node:fs";
import { join } from "node:path";
import { Writable } from "node:stream";
import { AGENT_VSOCK_PORT } from "../../../src/vmm/firecracker/vsock.js";
import { HybridVsockServer } from "../hybrid-vsock-server.js";
import * as F from "./faults.js";
import { Fault } from "./faults.js";
import { Guest } from "./guest.js";
import { checkMemoryFile, readVmState, restoreGuestTmp, type VmState, writeSnapshot } from "./snapshot.js";
import { FC_VERSION } from "./cli.js";

export type Reply = { status: 200; body: unknown } | { status: 204 };
type Body = Record<string, unknown>;

export interface VmOptions {
  id: string;
  agentBin: string;
  /** Directory for the guest's agent socket (see Guest). */
  guestDir: string;
  /** The process's stdout: the serial console when /serial was not configured. */
  stdout: Writable;
  /** Called once when the guest is gone (power-off, Ctrl-Alt-Del, crash): the process ends. */
  onGuestExit: () => void;
}

/** Generous: an exec of a static binary under unshare, on a machine shared by VM-booting tests. */
const GUEST_START_MS = 10_000;
const NO_CONTENT: Reply = { status: 204 };
const ok = (body: unknown): Reply => ({ status: 200, body });

export class StandinVm {
  private state: "Not started" | "Running" | "Paused" = "Not started";
  /** Firecracker's boot_path: a boot-specific resource was configured, so no snapshot load. */
  private bootPath = false;
  private machine: Body = { vcpu_count: 1, mem_size_mib: 128, smt: false, track_dirty_pages: false, huge_pages: "None" };
  private bootSource: Body | null = null;
  /** Root first, as Firecracker keeps its block device list. */
  private drives: Body[] = [];
  private ifaces: Body[] = [];
  private vsockCfg: { guest_cid: number; uds_path: string } | null = null;
  private vsock: HybridVsockServer | null = null;
  private entropy: Body | null = null;
  private balloon: Body | null = null;
  private logger: Body | null = null;
  private metrics: { path: string } | null = null;
  private serialPath: string | null = null;
  private mmds: unknown = null;
  private mmdsConfig: Body | null = null;
  private guest: Guest | null = null;
  /** Set when the process is going away: the guest's end is then ours, not a power-off. */
  private ending = false;

  constructor(private readonly opts: VmOptions) {}

  get started(): boolean {
    return this.state !== "Not started";
  }

  async handle(method: string, path: string, body: Body | undefined): Promise<Reply> {
    const seg = path.split("/").filter((s) => s !== "");
    const key = `${method} /${seg[0] ?? ""}${seg[0] === "snapshot" || seg[0] === "vm" || seg[0] === "mmds" || seg[0] === "hotplug" ? (seg[1] ? `/${seg[1]}` : "") : ""}`;
    const b = body ?? {};
    switch (key) {
      case "GET /":
        return ok({ id: this.opts.id, state: this.state, vmm_version: FC_VERSION, app_name: "Firecracker" });
      case "GET /version":
        return ok({ firecracker_version: FC_VERSION });
      case "GET /machine-config":
        return ok(this.machine);
      case "GET /vm/config":
        return ok(this.fullConfig());
      case "GET /mmds":
        return ok(this.mmds ?? {});
      case "PUT /mmds":
        this.mmds = b;
        return NO_CONTENT;
      case "PATCH /mmds":
        this.mmds = mergePatch(this.mmds ?? {}, b);
        return NO_CONTENT;
      case "PUT /actions":
        return this.action(String(b.action_type));
      case "PATCH /vm":
        return this.setVmState(String(b.state));
      case "PUT /snapshot/create":
        this.postBoot();
        return this.createSnapshot(b);
      case "PUT /snapshot/load":
        return this.loadSnapshot(b);
      case "PATCH /drives":
        this.postBoot();
        return this.patchDrive(b);
      case "PATCH /network-interfaces":
        this.postBoot();
        if (!this.ifaces.some((i) => i.iface_id === b.iface_id)) throw new Fault(F.netUnknownIface(String(b.iface_id)));
        return NO_CONTENT;
      case "PATCH /balloon":
      case "GET /balloon":
        if (!this.balloon) throw new Fault("Balloon config error: No balloon device found.");
        if (method === "PATCH") this.postBoot();
        return method === "GET" ? ok(this.balloon) : NO_CONTENT;
    }
    // Everything else configures a resource: pre-boot only.
    this.preBoot();
    switch (key) {
      case "PUT /logger":
        this.logger = b;
        openExisting(String(b.log_path), F.loggerOpen);
        return NO_CONTENT;
      case "PUT /metrics":
        if (this.metrics) throw new Fault(F.METRICS_REINIT);
        openExisting(String(b.metrics_path), F.metricsOpen);
        this.metrics = { path: String(b.metrics_path) };
        return NO_CONTENT;
      case "PUT /serial":
        this.serialPath = String(b.serial_out_path);
        return NO_CONTENT;
      case "PUT /cpu-config":
        return NO_CONTENT;
    }
    // Boot-specific resources: after any of them a snapshot load is refused.
    this.bootPath = true;
    switch (key) {
      case "PUT /boot-source":
        return this.putBootSource(b);
      case "PUT /drives":
        return this.putDrive(b);
      case "PUT /machine-config":
        return this.putMachine({ vcpu_count: b.vcpu_count, mem_size_mib: b.mem_size_mib, smt: b.smt ?? false, track_dirty_pages: b.track_dirty_pages ?? false, huge_pages: b.huge_pages ?? "None", ...(b.cpu_template ? { cpu_template: b.cpu_template } : {}) });
      case "PATCH /machine-config":
        return this.putMachine({ ...this.machine, ...b });
      case "PUT /network-interfaces":
        this.ifaces = [...this.ifaces.filter((i) => i.iface_id !== b.iface_id), b];
        return NO_CONTENT;
      case "PUT /vsock":
        return this.putVsock(b);
      case "PUT /entropy":
        this.entropy = b;
        return NO_CONTENT;
      case "PUT /balloon":
        this.balloon = b;
        return NO_CONTENT;
      case "PUT /mmds/config":
        this.mmdsConfig = b;
        return NO_CONTENT;
    }
    throw new Fault(`The requested operation is not supported: ${method} ${path} is not played by the Firecracker stand-in`);
  }

  private preBoot(): void {
    if (this.started) throw new Fault(F.NOT_SUPPORTED_POST_BOOT);
  }

  private postBoot(): void {
    if (!this.started) throw new Fault(F.NOT_SUPPORTED_PRE_BOOT);
  }

  private putBootSource(b: Body): Reply {
    checkOpen(String(b.kernel_image_path), constants.O_RDONLY, F.kernelOpen);
    if (typeof b.initrd_path === "string") checkOpen(b.initrd_path, constants.O_RDONLY, F.initrdOpen);
    this.bootSource = b;
    return NO_CONTENT;
  }

  private putDrive(b: Body): Reply {
    const at = this.drives.findIndex((d) => d.drive_id === b.drive_id);
    const root = this.drives[0]?.is_root_device === true;
    if (b.is_root_device === true && root && at !== 0) throw new Fault(F.ROOT_DRIVE_EXISTS);
    const path = String(b.path_on_host);
    checkOpen(path, b.is_read_only === true ? constants.O_RDONLY : constants.O_RDWR, (e) => F.driveOpen(e, path));
    const list = this.drives.filter((d) => d.drive_id !== b.drive_id);
    if (b.is_root_device === true) list.unshift(b);
    else if (at >= 0) list.splice(at, 0, b);
    else list.push(b);
    this.drives = list;
    return NO_CONTENT;
  }

  private patchDrive(b: Body): Reply {
    const d = this.drives.find((x) => x.drive_id === b.drive_id);
    if (!d) throw new Fault(F.drivePatchUnknown(String(b.drive_id)));
    if (typeof b.path_on_host === "string") {
      const path = b.path_on_host;
      checkOpen(path, d.is_read_only === true ? constants.O_RDONLY : constants.O_RDWR, (e) => F.driveOpen(e, path));
      d.path_on_host = path;
    }
    return NO_CONTENT;
  }

  private putMachine(m: Body): Reply {
    const vcpus = Number(m.vcpu_count);
    if (vcpus < 1 || vcpus > 32 || (m.smt === true && vcpus > 1 && vcpus % 2 === 1)) throw new Fault(F.INVALID_VCPUS);
    const mem = Number(m.mem_size_mib);
    if (mem === 0 || (m.huge_pages === "2M" && mem % 2 !== 0)) throw new Fault(F.INVALID_MEM);
    this.machine = m;
    return NO_CONTENT;
  }

  private async putVsock(b: Body): Promise<Reply> {
    const cfg = { guest_cid: Number(b.guest_cid), uds_path: String(b.uds_path) };
    await this.vsock?.close();
    this.vsock = null;
    this.vsock = await this.bindVsock(cfg.uds_path);
    this.vsockCfg = cfg;
    return NO_CONTENT;
  }

  /** Firecracker binds the host-side socket when the device is created, refusing an existing path. */
  private async bindVsock(udsPath: string): Promise<HybridVsockServer> {
    try {
      return await HybridVsockServer.listen(udsPath, (req) =>
        req.port === AGENT_VSOCK_PORT && this.guest?.running ? { kind: "backend", path: this.guest.agentSocket } : { kind: "close" },
      );
    } catch (e) {
      throw new Fault(F.vsockBind(e));
    }
  }

  private async action(type: string): Promise<Reply> {
    if (type === "InstanceStart") {
      this.preBoot();
      if (!this.bootSource) throw new Fault(F.MISSING_KERNEL);
      await this.boot();
      this.state = "Running";
      return NO_CONTENT;
    }
    this.postBoot();
    if (type === "SendCtrlAltDel") this.guest?.ctrlAltDel();
    else if (type === "FlushMetrics" && this.metrics) appendLine(this.metrics.path, JSON.stringify({ utc_timestamp_ms: Date.now() }));
    return NO_CONTENT;
  }

  private setVmState(s: string): Reply {
    this.postBoot();
    if (s === "Paused") {
      this.guest?.pause();
      this.state = "Paused";
    } else {
      this.guest?.resume();
      this.state = "Running";
    }
    return NO_CONTENT;
  }

  /** The serial console: the file /serial named (created, appended to) or our stdout. */
  private console(): Writable {
    if (!this.serialPath) return this.opts.stdout;
    return new FdWritable(openSync(this.serialPath, constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND, 0o644));
  }

  /** Like Firecracker's InstanceStart, answers once the guest runs (its vCPUs started). */
  private async boot(restored = false): Promise<void> {
    const con = this.console();
    const args = String(this.bootSource?.boot_args ?? "");
    con.write(
      restored
        ? `[fc-standin] restored from a snapshot: a fresh hf-agent stands in for the guest (no memory state carried)\n`
        : `[    0.000000] Linux version 0.0.0-fc-standin (a process stands in for the guest; no kernel booted)\n[    0.000000] Command line: ${args}\n`,
    );
    const g = Guest.start({ agentBin: this.opts.agentBin, dir: this.opts.guestDir, console: con });
    this.guest = g;
    let up = false;
    void g.exited.then(() => {
      g.cleanup();
      // A guest that never came up is a failed start (a fatal fault ends us), not a power-off.
      if (up && !this.ending) this.opts.onGuestExit();
    });
    try {
      await g.waitStarted(GUEST_START_MS);
      up = true;
    } catch (e) {
      g.kill();
      throw new Fault(`Start microvm error: ${(e as Error).message}`, 400, true);
    }
  }

  private vmState(): Omit<VmState, "tmp_tar_bytes"> {
    return {
      firecracker_version: FC_VERSION,
      machine_config: this.machine,
      boot_source: this.bootSource,
      drives: this.drives,
      network_interfaces: this.ifaces,
      vsock: this.vsockCfg,
      entropy: this.entropy,
      balloon: this.balloon,
      mem_size_mib: Number(this.machine.mem_size_mib),
    };
  }

  private createSnapshot(b: Body): Reply {
    if (this.state !== "Paused") throw new Fault(F.CREATE_WHILE_RUNNING);
    writeSnapshot(String(b.snapshot_path), String(b.mem_file_path), this.vmState(), this.guest?.initPid());
    return NO_CONTENT;
  }

  private async loadSnapshot(b: Body): Promise<Reply> {
    this.preBoot();
    if (this.bootPath) throw new Fault(F.LOAD_NOT_ALLOWED);
    const backend = (b.mem_backend as Body | undefined) ?? { backend_type: "File", backend_path: b.mem_file_path };
    if (backend.backend_type !== "File") throw new Fault(F.UFFD_UNSUPPORTED, 400, true);
    const st = readVmState(String(b.snapshot_path));
    checkMemoryFile(String(backend.backend_path), st.mem_size_mib);
    // Devices are rebuilt from the recorded paths: a drive file gone since is a restore error.
    for (const d of st.drives) {
      const path = String(d.path_on_host);
      checkOpen(path, d.is_read_only === true ? constants.O_RDONLY : constants.O_RDWR, (e) => F.loadDrive(path, e), true);
    }
    const ifaces = st.network_interfaces.map((i) => ({ ...i }));
    for (const o of (b.network_overrides as Body[] | undefined) ?? []) {
      const i = ifaces.find((x) => x.iface_id === o.iface_id);
      if (!i) throw new Fault(F.loadOverride(`Invalid network override: no network interface ${String(o.iface_id)} in the snapshot`), 400, true);
      i.host_dev_name = o.host_dev_name;
    }
    const vo = b.vsock_override as Body | undefined;
    if (vo && !st.vsock) throw new Fault(F.loadOverride("Invalid vsock override: the snapshot has no vsock device"), 400, true);
    const vsock = st.vsock ? { ...st.vsock, ...(vo ? { uds_path: String(vo.uds_path) } : {}) } : null;
    if (vsock) {
      try {
        this.vsock = await this.bindVsock(vsock.uds_path);
      } catch (e) {
        throw new Fault((e as Error).message, 400, true);
      }
    }
    Object.assign(this, { machine: st.machine_config, bootSource: st.boot_source, drives: st.drives, ifaces, vsockCfg: vsock, entropy: st.entropy, balloon: st.balloon });
    await this.boot(true);
    const g = this.guest!;
    try {
      await g.waitReady(GUEST_START_MS);
    } catch (e) {
      throw new Fault(`Load snapshot error: Failed to restore from snapshot: ${(e as Error).message}`, 400, true);
    }
    restoreGuestTmp(g.initPid()!, String(backend.backend_path), st);
    this.state = "Running";
    if (b.resume_vm !== true) {
      this.guest?.pause();
      this.state = "Paused";
    }
    return NO_CONTENT;
  }

  private fullConfig(): Body {
    return {
      "balloon": this.balloon,
      "drives": this.drives,
      "boot-source": this.bootSource,
      "cpu-config": null,
      "logger": this.logger,
      "machine-config": this.machine,
      "metrics": this.metrics ? { metrics_path: this.metrics.path } : null,
      "mmds-config": this.mmdsConfig,
      "network-interfaces": this.ifaces,
      "vsock": this.vsockCfg,
      "entropy": this.entropy,
    };
  }

  /** Ends the guest and the vsock listener (the process is going away). */
  async shutdown(): Promise<void> {
    this.ending = true;
    this.guest?.kill();
    if (this.guest) await this.guest.exited;
    this.guest?.cleanup();
    await this.vsock?.close();
  }

  get guestProcess(): Guest | null {
    return this.guest;
  }
}

/** Opens (never creates) like Firecracker's File::open / OpenOptions on the resource's path. */
function checkOpen(path: string, flags: number, fault: (e: unknown) => string, fatal = false): void {
  try {
    closeSync(openSync(path, flags | constants.O_NONBLOCK));
  } catch (e) {
    throw new Fault(fault(e), 400, fatal);
  }
}

/** Logger and metrics targets: files or FIFOs that must exist (read-write so a FIFO does not block). */
function openExisting(path: string, fault: (e: unknown) => string): void {
  checkOpen(path, constants.O_RDWR | constants.O_APPEND, fault);
}

function appendLine(path: string, line: string): void {
  const fd = openSync(path, constants.O_RDWR | constants.O_APPEND | constants.O_NONBLOCK);
  try {
    writeSync(fd, line + "\n");
  } finally {
    closeSync(fd);
  }
}

/** RFC 7396 merge patch, as Firecracker's PATCH /mmds. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== "object" || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> = target && typeof target === "object" && !Array.isArray(target) ? { ...(target as Body) } : {};
  for (const [k, v] of Object.entries(patch as Body)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

export const guestDirFor = (pid: number) => join("/var/tmp", `hf-fc-standin-${pid}`);

/** A minimal Writable over an fd we own (the serial file), written synchronously like a UART. */
class FdWritable extends Writable {
  constructor(private readonly fd: number) {
    super();
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    try {
      writeSync(this.fd, chunk);
      cb();
    } catch (e) {
      cb(e as Error);
    }
  }
  override _final(cb: () => void): void {
    closeSync(this.fd);
    cb();
  }
}
