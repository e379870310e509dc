/**
 * The API's machine service: decides whether a request may happen (the pure transition table),
 * records the first status change with a conditional update (so concurrent requests get 409
 * instead of racing), and queues the slow part (boot, graceful stop) as VmLifecycle steps that
 * end in a persisted status. Lifecycle calls return right after the first status change; so does
 * creating a machine from an image, whose pull runs in the background (ImagePulls).
 */
import type { Logger } from "../core/ports/logger.js";
import { ulid } from "ulid";
import { checkFitsHost, type Capacity } from "../core/capacity.js";
import { HyperfleetError, isHyperfleetError } from "../core/errors.js";
import { checkAction, checkTransition, type MachineStatus } from "../core/machine-state.js";
import type { Vm } from "../vmm/vm.js";
import { parseImageRef } from "../images/index.js";
import type { CallContext, CreateMachineRequest, ExecOutput, ExecRequest, ExecStreamHandle, ExecStreamRequest, DirEntryView, FileStatView, ProcessStartRequest, ProcessView, LogsRequest, MachineServicePort, MachineView, UnpackView } from "../core/ports/services.js";
import type { MachinePatch, MachineRecord } from "../core/machine.js";
import type { MachineRepository } from "../store/machine-repository.js";
import { imagesUnavailable } from "../images/catalog.js";
import type { ImagePulls } from "./image-pulls.js";
import type { ImageUsers } from "./image-users.js";
import type { LiveVms } from "./live-vms.js";
import { MachineIo } from "./io.js";
import { MachineFileIo } from "./file-io.js";
import { MachineViews, type ServiceUrls } from "./views.js";
import type { MainProcesses } from "../workload/main-process.js";
import type { BootPaths, VmFactory } from "./vm-factory.js";
import type { VmLifecycle } from "./lifecycle.js";
import { waitForStatus } from "./wait.js";
import { networkClaim, type CreateNetworkOptions } from "./create-network.js";
import type { MachineSnapshots } from "./snapshots.js";
import { fitRequestToSnapshot, forkName, policyOf, sameMac, snapshotMachineFields } from "./snapshot-create.js";
import { removeSuspended } from "./suspend-files.js";
import { checkServices, newAccessToken, type AccessTokenStore } from "./proxied-services.js";
import type { MachineSecrets } from "./secrets.js";
import { deliverSecretFiles } from "../workload/secret-files.js";
import type { Supervisor } from "./supervisor.js";
import { healthCheckSpec, restartPolicyOf } from "../workload/health-policy.js";
import type { WorkloadEvent } from "../core/health.js";
import type { MachineVolumes } from "./volumes.js";

/** How long resuming a suspended machine waits for it to run (its restore queues behind other boots). */
const RESTORE_WAIT_MS = 60_000;

/** A request that does not come from a snapshot must give its shape (the API's schema checks it). */
function withShape(req: CreateMachineRequest): CreateMachineRequest & { vcpuCount: number; memSizeMib: number } {
  for (const [field, v] of [["vcpu_count", req.vcpuCount], ["mem_size_mib", req.memSizeMib]] as const) {
    if (v === undefined) throw new HyperfleetError("INVALID_ARGUMENT", `${field}: is required (unless the machine is created from a snapshot)`, { details: { field } });
  }
  return req as CreateMachineRequest & { vcpuCount: number; memSizeMib: number };
}

export interface MachineServiceOptions {
  repo: MachineRepository;
  vms: VmFactory;
  lifecycle: VmLifecycle;
  log: Logger;
  fileTransferTimeoutMs: number;
  /** Admission limits: a machine that could not start even on an idle host is refused at create. */
  capacity?: Capacity;
  /** VM networking (HYPERFLEET_NETWORK_DEFAULT, _SUBNET, _DNS, _PORTS_BIND, _PORT_RANGE). */
  network: CreateNetworkOptions;
  snapshots: MachineSnapshots;
  /** Seals secrets for the store (docs/agents.md, "Secrets"). */
  secrets: MachineSecrets;
  /** Health checks and restart policies. */
  supervisor: Supervisor;
  /** Volumes a create may name; absent: a create naming any is refused. */
  volumes?: MachineVolumes;
  images: {
    /** null when images are off on this host; `unavailable` says why. */
    pulls: ImagePulls | null;
    unavailable: string;
    users: ImageUsers;
    main: MainProcesses;
  };
  /** The proxy's URLs of a machine's services (issue 14); absent: the proxy is off. */
  serviceUrls?: ServiceUrls;
  /** Machines' proxy access tokens (issue 14). */
  tokens: AccessTokenStore;
}

export function machineNotFound(id: string): HyperfleetError {
  return new HyperfleetError("MACHINE_NOT_FOUND", `machine ${id} does not exist; GET /machines lists the machines`);
}

export class MachineService implements MachineServicePort {
  private readonly repo: MachineRepository;
  private readonly vms: VmFactory;
  private readonly lc: VmLifecycle;
  private readonly log: Logger;
  private readonly io: MachineIo;
  private readonly files: MachineFileIo;
  private readonly img: MachineServiceOptions["images"];
  private readonly views: MachineViews;
  private readonly capacity: Capacity | undefined;
  private readonly network: CreateNetworkOptions;
  private readonly snaps: MachineSnapshots;
  private readonly tokens: AccessTokenStore;
  private readonly secrets: MachineSecrets;
  private readonly supervisor: Supervisor;
  private readonly volumes: MachineVolumes | undefined;
  private readonly shutdown = new AbortController();
  /** Follows `shutdown`, with SHUTTING_DOWN as its reason (what a cancelled exec or transfer answers). */
  private readonly stopping = new AbortController();

  constructor(o: MachineServiceOptions) {
    this.repo = o.repo;
    this.vms = o.vms;
    this.lc = o.lifecycle;
    this.log = o.log;
    this.img = o.images;
    this.capacity = o.capacity;
    this.network = o.network;
    this.snaps = o.snapshots;
    this.tokens = o.tokens;
    this.secrets = o.secrets;
    this.volumes = o.volumes;
    this.io = new MachineIo((id) => this.requireRunning(id), o.fileTransferTimeoutMs, (id) => this.live.get(id));
    this.files = new MachineFileIo((id) => this.requireRunning(id), o.fileTransferTimeoutMs);
    this.supervisor = o.supervisor;
    this.views = new MachineViews(o.images.pulls, o.images.main, o.serviceUrls, o.supervisor);
    this.shutdown.signal.addEventListener("abort", () => this.stopping.abort(new HyperfleetError("SHUTTING_DOWN", "the daemon is shutting down; retry when it is back")), { once: true });
  }

  /** Aborted when the daemon shuts down (pulls ahead of time stop with it). */
  get closing(): AbortSignal {
    return this.shutdown.signal;
  }

  /** The live VMs (for shutdown and tests: `live.idle()` waits for queued lifecycle steps). */
  get live(): LiveVms {
    return this.lc.live;
  }

  // --- reads ---

  async list(filter: { status?: readonly MachineStatus[] }): Promise<MachineView[]> {
    return (await this.repo.list(filter)).map((r) => this.views.full(r));
  }

  async get(id: string): Promise<MachineView> {
    return this.views.full(await this.record(id));
  }

  /** Restart and health events, oldest first (the last 200). */
  async events(id: string): Promise<WorkloadEvent[]> {
    await this.record(id);
    return this.supervisor.events(id);
  }

  async wait(id: string, status: MachineStatus, timeoutMs: number, ctx: CallContext = {}): Promise<MachineView> {
    const signals = [this.shutdown.signal, ...(ctx.signal ? [ctx.signal] : [])];
    const rec = await waitForStatus({ bus: this.lc.bus, get: (i) => this.record(i), id, status, timeoutMs, signal: AbortSignal.any(signals) });
    return this.views.plain(rec);
  }

  // --- proxy access tokens ---

  async accessToken(id: string): Promise<string> {
    const t = await this.tokens.token(id);
    if (t === undefined) throw machineNotFound(id);
    // Rows migrated from before 0007 got one; null only if someone cleared it by hand.
    return t ?? this.rotateAccessToken(id);
  }

  async rotateAccessToken(id: string): Promise<string> {
    const t = newAccessToken();
    if (!(await this.tokens.setToken(id, t))) throw machineNotFound(id);
    return t;
  }

  // --- lifecycle ---

  async create(request: CreateMachineRequest, ctx: CallContext = {}): Promise<MachineView> {
    this.assertOpen();
    const snap = request.snapshot === undefined ? null : await this.snaps.record(request.snapshot);
    const req = snap === null ? withShape(request) : fitRequestToSnapshot(request, snap);
    const tooBig = this.capacity && checkFitsHost({ vcpuCount: req.vcpuCount, memSizeMib: req.memSizeMib }, this.capacity);
    if (tooBig) throw tooBig;
    const volumes = await this.volumeAttachments(request, snap !== null);
    const id = `vm_${ulid()}`;
    const sealedSecrets = this.secrets.seal(id, req.secrets ?? {});
    const pulls = req.image === undefined ? null : this.imagePulls(req.image);
    // The request's logger has no machine id yet (POST /machines has no :id): bind it here.
    const bound = { ...ctx, log: (ctx.log ?? this.log).child({ machine_id: id }) };
    // Checked before anything is written; the slot and ports are claimed with the insert.
    const claim = sameMac(networkClaim(req, id, this.network, bound.log), snap);
    const services = checkServices(req.services, claim !== null);
    const healthCheck = req.healthCheck === undefined ? null : healthCheckSpec(req.healthCheck, claim !== null);
    const restartPolicy = restartPolicyOf(req.restartPolicy);
    // Resolved now so the record shows what it boots. Without guest assets a machine can still be
    // created (start then says what is missing), unless it is meant to start right away.
    let paths: BootPaths | null = null;
    if (snap === null) {
      try {
        paths = await this.vms.bootPaths({ nic: claim !== null });
      } catch (e) {
        if (req.start) throw e;
      }
    }
    // A machine from a snapshot holds the snapshot's image as its own (no pull acquired it).
    if (snap?.source.imageDigest) await this.img.users.hold(id, snap.source.imageDigest);
    const rec = await this.repo.insert({
      id,
      // A clone's is its snapshot's (below); a new machine's, this daemon's.
      vmm: await this.vms.vmmKind(),
      name: req.name,
      vcpuCount: req.vcpuCount,
      memSizeMib: req.memSizeMib,
      imageRef: req.image ?? null,
      kernelImagePath: paths?.kernelImagePath ?? null,
      initrdPath: paths?.initrdPath ?? null,
      kernelArgs: paths?.kernelArgs ?? null,
      // An image machine's root disk is its image's, known once the pull is done.
      rootfsPath: pulls ? null : (paths?.rootfsPath ?? null),
      runDir: this.vms.runDirFor(id),
      network: null,
      env: req.env,
      metadata: req.metadata,
      imageSizeMib: req.imageSizeMib ?? null,
      cmd: req.cmd ?? null,
      entrypoint: req.entrypoint ?? null,
      workdir: req.workdir ?? null,
      user: req.user ?? null,
      sealedSecrets,
      ...(snap !== null && snapshotMachineFields(snap)),
      services,
      accessToken: newAccessToken(),
      ...(volumes.length > 0 && { volumes }),
    }, claim ?? undefined).catch(async (e: unknown) => {
      await this.img.users.forget(id);
      throw e;
    });
    // Before any start: the first `running` already has its check and policy.
    await this.supervisor.register(id, healthCheck, restartPolicy).catch(async (e: unknown) => {
      await this.repo.delete(id);
      await this.img.users.forget(id);
      throw e;
    });
    // With `start`, creating is all or nothing: a start refused (no capacity) leaves no machine.
    let starting: MachineRecord | null = null;
    if (req.start) {
      try {
        starting = await this.admitStart(rec);
      } catch (e) {
        await this.repo.delete(id);
        await this.img.users.forget(id);
        throw e;
      }
    }
    bound.log.info({ name: req.name, image: req.image, snapshot: req.snapshot, start: req.start, ip: rec.network?.ip, exposed_ports: rec.exposedPorts.length }, "machine created");
    // Before the boot is queued: the boot waits for this pull, with these credentials.
    pulls?.begin(rec, req.registryAuth, bound.log);
    if (starting === null) return this.views.plain(rec);
    this.queueBoot(starting, bound);
    return this.views.plain(starting);
  }

  async setSecrets(id: string, secrets: Record<string, string>, ctx: CallContext = {}): Promise<MachineView> {
    this.assertOpen();
    await this.record(id);
    const sealed = this.secrets.seal(id, secrets);
    const log = this.logFor(id, ctx);
    let updated: MachineRecord | undefined;
    // In the machine's queue: a boot in progress reads the secrets it starts the main process
    // with before this replaces them, and the live files are rewritten after it.
    await this.live.enqueue(id, async () => {
      const rec = await this.record(id);
      // Its agent cannot answer, and files left stale until a resume would be a silent half-rotation.
      if (rec.status === "paused") {
        throw new HyperfleetError("MACHINE_PAUSED", `machine ${id} is paused; POST /machines/${id}/resume first, then set its secrets`, { details: { current_status: rec.status } });
      }
      updated = (await this.repo.setSecrets(id, sealed)) ?? rec;
      const vm = this.live.get(id);
      if (rec.status !== "running" || vm === undefined) return;
      const failed = await deliverSecretFiles(vm, updated, secrets, log, true);
      if (failed) throw failed;
    });
    log.info({ secrets: Object.keys(secrets).length }, "secrets replaced");
    return this.views.full(updated!);
  }

  /** The request's volumes, checked and resolved (the insert claims them). */
  private async volumeAttachments(req: CreateMachineRequest, fromSnapshot: boolean) {
    if (req.volumes === undefined || req.volumes.length === 0) return [];
    if (fromSnapshot) throw new HyperfleetError("SNAPSHOT_INCOMPATIBLE", "volumes: a machine created from a snapshot has its source's devices; volumes cannot be added to it", { details: { field: "volumes" } });
    if (!this.volumes) throw new HyperfleetError("NOT_SUPPORTED_YET", "volumes: this daemon has no volumes", { details: { field: "volumes" } });
    return this.volumes.attachments(req.volumes);
  }

  async start(id: string, ctx: CallContext = {}): Promise<MachineView> {
    this.assertOpen();
    const rec = await this.record(id);
    checkAction("start", rec.status).unwrap();
    const starting = await this.admitStart(rec);
    this.queueBoot(starting, ctx);
    return this.views.plain(starting);
  }

  async stop(id: string, ctx: CallContext = {}): Promise<MachineView> {
    this.assertOpen();
    const rec = await this.record(id);
    checkAction("stop", rec.status).unwrap();
    if (rec.status === "suspended") return this.discardSuspended(rec, ctx);
    const stopping = await this.move(rec, "stopping", {}, "stop requested");
    const log = this.logFor(id, ctx);
    this.live.abortBoot(id);
    this.background(id, log, () => this.lc.halt(id, log));
    return this.views.plain(stopping);
  }

  async restart(id: string, ctx: CallContext = {}): Promise<MachineView> {
    this.assertOpen();
    const rec = await this.record(id);
    checkAction("restart", rec.status).unwrap();
    if (rec.status !== "running") return this.start(id, ctx);
    const stopping = await this.move(rec, "stopping", {}, "restart requested");
    const log = this.logFor(id, ctx);
    this.background(id, log, async () => {
      await this.lc.halt(id, log);
      let starting: MachineRecord | undefined;
      try {
        starting = await this.lc.settle(id, ["stopped"], "starting", { lastError: null }, "restart: booting again");
      } catch (e) {
        // Another start took the capacity this machine gave back while it stopped: it stays stopped, saying why.
        if (!isHyperfleetError(e, "INSUFFICIENT_CAPACITY")) throw e;
        const rec = await this.repo.update(id, { lastError: { code: e.code, message: e.message } });
        if (rec) this.lc.bus.publish({ kind: "updated", machine: rec });
        log.warn({ code: e.code, reason: e.message }, "restart: the machine stopped but could not start again");
        return;
      }
      if (starting) await this.lc.boot(starting, log);
    });
    return this.views.plain(stopping);
  }

  /** Freezes a running machine (200 once it is `paused`: a QMP round trip, no background step). */
  async pause(id: string, ctx: CallContext = {}): Promise<MachineView> {
    return this.freezeOrThaw(id, "pause", ctx);
  }

  /** Lets a paused machine run again; answers once it is `running` with its clock set. */
  async resume(id: string, ctx: CallContext = {}): Promise<MachineView> {
    return this.freezeOrThaw(id, "resume", ctx);
  }

  /** Saves the machine to disk and ends its VMM; answers once it is `suspended`. */
  async suspend(id: string, ctx: CallContext = {}): Promise<MachineView> {
    return this.freezeOrThaw(id, "suspend", ctx);
  }

  /**
   * Clones a running or paused machine `count` times from one snapshot of it (a fork's own,
   * deleted with its last clone). All or nothing: if one clone cannot be created, those made
   * before it are deleted again.
   */
  async fork(id: string, count: number, ctx: CallContext = {}): Promise<MachineView[]> {
    this.assertOpen();
    const src = await this.record(id);
    const log = this.logFor(id, ctx);
    const snap = await this.snaps.take(id, { auto: true }, log);
    const made: MachineView[] = [];
    try {
      for (let i = 1; i <= count; i++) {
        made.push(await this.create({ name: forkName(src.name, snap.id, i), snapshot: snap.id, env: src.env, metadata: src.metadata, start: true, ...(src.network && { network: policyOf(src.network) }), services: src.services }, ctx));
      }
    } catch (e) {
      for (const m of made) await this.delete(m.id, ctx).catch((d: unknown) => log.warn({ err: d, clone: m.id }, "could not delete a clone of a failed fork"));
      await this.snaps.machineGone(snap.id, log);
      throw e;
    }
    log.info({ snapshot_id: snap.id, clones: made.length }, "machine forked");
    return made;
  }

  /** A suspended machine's stop: its saved state is thrown away, so the next start boots afresh. */
  private async discardSuspended(rec: MachineRecord, ctx: CallContext): Promise<MachineView> {
    const stopped = await this.move(rec, "stopped", { restoreFrom: null }, "stop requested");
    await removeSuspended(rec.runDir);
    this.logFor(rec.id, ctx).info("suspended state discarded");
    return this.views.plain(stopped);
  }

  private async freezeOrThaw(id: string, action: "pause" | "resume" | "suspend", ctx: CallContext): Promise<MachineView> {
    this.assertOpen();
    const before = await this.record(id);
    checkAction(action, before.status).unwrap();
    if (action === "resume" && before.status === "suspended") return this.restoreSuspended(before, ctx);
    const log = this.logFor(id, ctx);
    let done: MachineRecord | undefined;
    // In the machine's queue: never overlapping a boot or a halt. Checked again there, since a
    // stop may have been recorded while this waited.
    await this.live.enqueue(id, async () => {
      checkAction(action, (await this.record(id)).status).unwrap();
      done = await (action === "pause" ? this.lc.pause(id, log) : action === "resume" ? this.lc.resume(id, log) : this.lc.suspend(id, log));
    });
    if (done) return this.views.plain(done);
    const now = await this.record(id);
    throw new HyperfleetError("INVALID_STATE_TRANSITION", `cannot ${action}: the machine changed to '${now.status}' meanwhile`, {
      details: { current_status: now.status },
    });
  }

  /** Resume of a suspended machine: a restore, like a start; answers once it runs again. */
  private async restoreSuspended(rec: MachineRecord, ctx: CallContext): Promise<MachineView> {
    await this.start(rec.id, ctx);
    return this.wait(rec.id, "running", RESTORE_WAIT_MS, ctx);
  }

  async delete(id: string, ctx: CallContext = {}): Promise<void> {
    this.assertOpen();
    const rec = await this.record(id);
    checkAction("delete", rec.status).unwrap();
    await this.move(rec, "destroying", {}, "delete requested");
    const log = this.logFor(id, ctx);
    this.live.abortBoot(id);
    await this.img.pulls?.cancel(id);
    await this.live.enqueue(id, () => this.lc.destroy(rec, log));
    // Only once the row is gone: until then the machine still holds its image.
    this.img.main.forget(id);
    await this.img.users.forget(id);
    await this.snaps.machineGone(rec.snapshotId, log);
  }

  // --- exec and files (delegated; they only need a running Machine) ---

  async exec(id: string, req: ExecRequest, ctx: CallContext = {}): Promise<ExecOutput> {
    // The caller is looking at the machine (and may have changed its main process): look again,
    // before answering, so what the caller reads next agrees with what it just did.
    const out = await this.io.exec(id, req, this.callSignal(ctx));
    await this.img.main.refresh(id);
    return out;
  }
  execStream(id: string, req: ExecStreamRequest): Promise<ExecStreamHandle> {
    return this.io.execStream(id, req);
  }
  startProcess(id: string, req: ProcessStartRequest): Promise<ProcessView> {
    return this.io.startProcess(id, req);
  }
  listProcesses(id: string): Promise<ProcessView[]> {
    return this.io.listProcesses(id);
  }
  signalProcess(id: string, pid: number, signal: number): Promise<ProcessView> {
    return this.io.signalProcess(id, pid, signal);
  }
  processOutput(id: string, pid: number, req: LogsRequest, ctx: CallContext = {}): Promise<Buffer | AsyncIterable<Buffer>> {
    return this.io.processOutput(id, pid, req, this.callSignal(ctx));
  }
  writeFile(id: string, path: string, data: Buffer, mode: number | undefined, ctx: CallContext = {}): Promise<{ size: number }> {
    return this.io.writeFile(id, path, data, mode, this.callSignal(ctx));
  }
  readFile(id: string, path: string, maxSize: number, ctx: CallContext = {}): Promise<Buffer> {
    return this.io.readFile(id, path, maxSize, this.callSignal(ctx));
  }
  stat(id: string, path: string): Promise<FileStatView> {
    return this.io.stat(id, path);
  }
  removeFile(id: string, path: string, recursive: boolean): Promise<void> {
    return this.io.remove(id, path, recursive);
  }
  listDir(id: string, path: string, limit: number, ctx: CallContext = {}): Promise<{ entries: DirEntryView[]; truncated: boolean }> {
    return this.files.listDir(id, path, limit, this.callSignal(ctx));
  }
  mkdir(id: string, path: string, opts: { parents: boolean; mode?: number }, ctx: CallContext = {}): Promise<void> {
    return this.files.mkdir(id, path, opts, this.callSignal(ctx));
  }
  rename(id: string, from: string, to: string, opts: { noReplace: boolean }, ctx: CallContext = {}): Promise<void> {
    return this.files.rename(id, from, to, opts, this.callSignal(ctx));
  }
  openDownload(id: string, path: string, maxSize: number, ctx: CallContext = {}): Promise<{ size: number; body: AsyncIterable<Buffer> }> {
    return this.files.openDownload(id, path, maxSize, this.callSignal(ctx));
  }
  openTarDownload(id: string, path: string, maxSize: number, ctx: CallContext = {}): Promise<AsyncIterable<Buffer>> {
    return this.files.openTarDownload(id, path, maxSize, this.callSignal(ctx));
  }
  uploadStream(id: string, path: string, body: AsyncIterable<Buffer>, opts: { mode?: number; maxSize: number }, ctx: CallContext = {}): Promise<{ size: number }> {
    return this.files.uploadStream(id, path, body, opts, this.callSignal(ctx));
  }
  uploadTar(id: string, path: string, body: AsyncIterable<Buffer>, maxSize: number, ctx: CallContext = {}): Promise<UnpackView> {
    return this.files.uploadTar(id, path, body, maxSize, this.callSignal(ctx));
  }
  logs(id: string, req: LogsRequest, ctx: CallContext = {}): Promise<Buffer | AsyncIterable<Buffer>> {
    return this.io.logs(id, req, this.callSignal(ctx)).finally(() => void this.img.main.refresh(id));
  }

  /**
   * Fires when the client goes away or the daemon shuts down: the guest-side operation is
   * cancelled. A shutdown says so (503 SHUTTING_DOWN), since that client is still listening.
   */
  private callSignal(ctx: CallContext): AbortSignal {
    return AbortSignal.any([this.stopping.signal, ...(ctx.signal ? [ctx.signal] : [])]);
  }

  // --- shutdown ---

  /**
   * Daemon shutdown: refuse new work, end pending waits, optionally stop every VM, then let go of
   * the VMs (they keep running) by closing agent connections.
   */
  async close(opts: { stopVms: boolean }): Promise<void> {
    this.shutdown.abort();
    if (opts.stopVms) {
      // In parallel: the whole shutdown then takes about one stop timeout, however many VMs run.
      const stops = this.lc.live.all().map(async ([id]) => {
        if (!(await this.lc.settle(id, ["running", "paused", "starting"], "stopping", {}, "daemon exiting"))) return;
        this.lc.live.abortBoot(id);
        await this.lc.live.enqueue(id, () => this.lc.halt(id, this.log.child({ machine_id: id })));
      });
      await Promise.allSettled(stops);
    }
    await this.img.pulls?.close();
    this.img.main.close();
    for (const [, m] of this.lc.live.all()) m.detach();
    this.lc.bus.clear();
  }

  // --- internals ---

  /** Records the boot paths and moves to `starting`, which admission control may refuse. */
  private async admitStart(rec: MachineRecord): Promise<MachineRecord> {
    await this.checkVmm(rec);
    const paths = rec.kernelImagePath !== null && (rec.rootfsPath !== null || rec.imageRef !== null) ? {} : await this.bootPaths(rec);
    return this.move(rec, "starting", { ...paths, lastError: null, pid: null }, "start requested");
  }

  /**
   * A machine is booted or restored only by the VMM it was created under: its disk format, devices
   * and saved state are that VMM's. Checked before any status changes, so the machine stays as it was.
   */
  private async checkVmm(rec: MachineRecord): Promise<void> {
    const current = await this.vms.vmmKind();
    if (rec.vmm === current) return;
    throw new HyperfleetError(
      "VMM_MISMATCH",
      `machine ${rec.id} was created under ${rec.vmm} and this daemon runs ${current}: it is not ${rec.restoreFrom === null ? "booted" : "restored"} with another VMM's driver; run the daemon with HYPERFLEET_VMM=${rec.vmm}, or create a new machine`,
      { details: { machine_vmm: rec.vmm, daemon_vmm: current } },
    );
  }

  private queueBoot(starting: MachineRecord, ctx: CallContext): void {
    const log = this.logFor(starting.id, ctx);
    this.background(starting.id, log, () => this.lc.boot(starting, log));
  }

  private async record(id: string): Promise<MachineRecord> {
    const rec = await this.repo.get(id);
    if (rec === undefined) throw machineNotFound(id);
    return rec;
  }

  /** Checks an image reference (INVALID_ARGUMENT, field `image`) and that images work here. */
  private imagePulls(image: string): ImagePulls {
    parseImageRef(image);
    if (!this.img.pulls) throw imagesUnavailable(this.img.unavailable);
    return this.img.pulls;
  }

  /** Kernel and initrd from the configuration; the root disk too, unless the image provides it. */
  private async bootPaths(rec: MachineRecord): Promise<Partial<BootPaths>> {
    const { rootfsPath, ...rest } = await this.vms.bootPaths({ nic: rec.network !== null });
    return rec.imageRef === null ? { ...rest, rootfsPath } : rest;
  }

  private assertOpen(): void {
    if (this.shutdown.signal.aborted) throw new HyperfleetError("SHUTTING_DOWN", "the daemon is shutting down; retry when it is back");
  }

  /** Queues a lifecycle step nobody awaits; its failure (say, the store is gone) is logged, never thrown. */
  private background(id: string, log: Logger, step: () => Promise<void>): void {
    this.live.enqueue(id, step).catch((e: unknown) => log.error({ err: e }, "lifecycle step failed"));
  }

  private logFor(id: string, ctx: CallContext): Logger {
    return ctx.log ?? this.log.child({ machine_id: id });
  }

  /** A user-requested status change; losing a race to another request is a 409 with the new status. */
  private async move(rec: MachineRecord, to: MachineStatus, patch: MachinePatch, reason: string): Promise<MachineRecord> {
    const moved = await this.lc.settle(rec.id, [rec.status], to, patch, reason);
    if (moved) return moved;
    const now = await this.record(rec.id);
    checkTransition(now.status, to, reason.replace(/ requested$/, "")).unwrap();
    throw new HyperfleetError("INVALID_STATE_TRANSITION", `machine changed to '${now.status}' meanwhile; retry`, {
      details: { current_status: now.status },
    });
  }

  private async requireRunning(id: string): Promise<{ rec: MachineRecord; machine: Vm }> {
    const rec = await this.record(id);
    const machine = this.live.get(id);
    // Its agent cannot answer: refused at once rather than left to time out.
    if (rec.status === "paused") {
      throw new HyperfleetError("MACHINE_PAUSED", `machine ${id} is paused; POST /machines/${id}/resume first`, { details: { current_status: rec.status } });
    }
    if (rec.status !== "running" || machine === undefined) {
      throw new HyperfleetError("MACHINE_NOT_RUNNING", `machine ${id} is '${rec.status}', not running; start it and wait for 'running'`, {
        details: { current_status: rec.status },
      });
    }
    return { rec, machine };
  }
}
