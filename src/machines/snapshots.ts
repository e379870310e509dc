/**
 * Snapshots of machines (docs/adr/0009): taking one (in the source machine's queue, so it never
 * overlaps a boot, stop or pause of it; the source goes on as it was), listing, deleting (refused
 * while machines created from it exist), and the housekeeping of a fork's own snapshots, which go
 * with their last clone. Files live in `<dataDir>/snapshots/<id>/`; the record is written only once
 * they are complete, and startup removes directories without a record (a crash mid-snapshot).
 */
import { mkdir, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { ulid } from "ulid";
import { HyperfleetError, toHyperfleetError } from "../core/errors.js";
import type { Logger } from "../core/ports/logger.js";
import type { CallContext, SnapshotServicePort, SnapshotView } from "../core/ports/services.js";
import type { MachineRecord } from "../core/machine.js";
import type { SnapshotRecord, SnapshotSource } from "../core/snapshot.js";
import type { MachineRepository } from "../store/machine-repository.js";
import type { SnapshotRepository } from "../store/snapshot-repository.js";
import type { ImageUsers } from "./image-users.js";
import type { LiveVms } from "./live-vms.js";
import type { Vm } from "../vmm/vm.js";
import type { VmSnapshot } from "../core/ports/vmm-driver.js";
import { refreshGuest } from "./guest-identity.js";

export interface MachineSnapshotsOptions {
  machines: MachineRepository;
  snapshots: SnapshotRepository;
  live: LiveVms;
  /** A snapshot's frozen disk lies on its image's root disk: the snapshot holds the image. */
  imageUsers: ImageUsers;
  /** `<dataDir>/snapshots`. */
  dir: string;
  log: Logger;
}

export function snapshotNotFound(id: string): HyperfleetError {
  return new HyperfleetError("SNAPSHOT_NOT_FOUND", `snapshot ${id} does not exist; GET /snapshots lists the snapshots`);
}

/** A clone of a machine with volumes would be a second writer of its volumes' disks. */
export function machineHasVolumes(machineId: string, names: string[]): HyperfleetError {
  return new HyperfleetError(
    "MACHINE_HAS_VOLUMES",
    `machine ${machineId} holds volumes (${names.join(", ")}): a snapshot or fork would make a second writer of them, and a volume has one writer at a time`,
    { details: { volumes: names } },
  );
}

export class MachineSnapshots implements SnapshotServicePort {
  constructor(private readonly o: MachineSnapshotsOptions) {}

  async create(machineId: string, ctx: CallContext = {}): Promise<SnapshotView> {
    return viewOf(await this.take(machineId, { auto: false }, ctx.log ?? this.o.log.child({ machine_id: machineId })));
  }

  async list(): Promise<SnapshotView[]> {
    return (await this.o.snapshots.list()).map(viewOf);
  }

  async get(id: string): Promise<SnapshotView> {
    return viewOf(await this.record(id));
  }

  async record(id: string): Promise<SnapshotRecord> {
    const s = await this.o.snapshots.get(id);
    if (s === undefined) throw snapshotNotFound(id);
    return s;
  }

  async delete(id: string, ctx: CallContext = {}): Promise<void> {
    if (!(await this.o.snapshots.delete(id))) throw snapshotNotFound(id);
    await this.removeFiles(id);
    (ctx.log ?? this.o.log).info({ snapshot_id: id }, "snapshot deleted");
  }

  /**
   * Snapshots a running or paused machine for clones. Run in the machine's queue; the guest is
   * frozen only while its state is saved (a running one is resumed and its clock set right after).
   */
  async take(machineId: string, opts: { auto: boolean }, log: Logger): Promise<SnapshotRecord> {
    let taken: SnapshotRecord | undefined;
    await this.o.live.enqueue(machineId, async () => {
      taken = await this.takeNow(machineId, opts, log);
    });
    if (!taken) throw new HyperfleetError("INTERNAL", `snapshot of ${machineId} produced nothing`);
    return taken;
  }

  private async takeNow(machineId: string, opts: { auto: boolean }, log: Logger): Promise<SnapshotRecord> {
    const rec = await this.o.machines.get(machineId);
    if (rec === undefined) throw new HyperfleetError("MACHINE_NOT_FOUND", `machine ${machineId} does not exist; GET /machines lists the machines`);
    if (rec.volumes.length > 0) throw machineHasVolumes(machineId, rec.volumes.map((v) => v.name));
    const vm = this.o.live.get(machineId);
    if ((rec.status !== "running" && rec.status !== "paused") || vm === undefined) {
      throw new HyperfleetError("MACHINE_NOT_RUNNING", `machine ${machineId} is '${rec.status}': only a running or paused machine can be snapshotted`, {
        details: { current_status: rec.status },
      });
    }
    if (rec.kernelImagePath === null) throw new HyperfleetError("INTERNAL", `machine ${machineId} has no boot paths recorded`);
    const id = `snap_${ulid()}`;
    const dir = join(this.o.dir, id);
    const t0 = Date.now();
    const wasRunning = rec.status === "running";
    let snapshot: SnapshotRecord;
    try {
      const vmSnap = await saveForClones(vm, dir);
      const at = new Date().toISOString();
      snapshot = { id, machineId, vm: vmSnap, source: snapshotSource(rec), sizeBytes: vmSnap.sizeBytes, auto: opts.auto, templateKey: null, createdAt: at, lastUsedAt: at };
      if (snapshot.source.imageDigest !== null) await this.o.imageUsers.hold(id, snapshot.source.imageDigest);
      await this.o.snapshots.insert(snapshot);
    } catch (e) {
      await this.o.imageUsers.forget(id);
      await rm(dir, { recursive: true, force: true });
      throw e;
    } finally {
      if (wasRunning) await this.thaw(vm, machineId, log);
    }
    log.info({ snapshot_id: id, snapshot_ms: Date.now() - t0, size_bytes: snapshot.sizeBytes, auto: opts.auto }, "snapshot taken");
    return snapshot;
  }

  /** Lets the source run again; its clock lost the time it was frozen. */
  private async thaw(vm: Vm, machineId: string, log: Logger): Promise<void> {
    try {
      await vm.handle.resume();
      if (vm.agent) await refreshGuest(vm.agent, "resume", machineId);
    } catch (e) {
      log.warn({ err: toHyperfleetError(e) }, "could not resume the machine after its snapshot");
    }
  }

  /** A machine created from `snapshotId` is gone: a fork's snapshot goes with its last clone. */
  async machineGone(snapshotId: string | null, log: Logger): Promise<void> {
    if (snapshotId === null) return;
    const s = await this.o.snapshots.get(snapshotId);
    // Templates are a cache with its own eviction (templates.ts): kept when their last machine goes.
    if (!s?.auto || s.templateKey !== null || (await this.o.snapshots.users(snapshotId)).length > 0) return;
    try {
      await this.delete(snapshotId, { log });
    } catch (e) {
      // A clone created meanwhile holds it now; the next delete or startup tries again.
      log.debug({ err: toHyperfleetError(e), snapshot_id: snapshotId }, "fork snapshot kept");
    }
  }

  /**
   * Startup: removes snapshot directories without a record (a daemon that died mid-snapshot) and
   * fork snapshots no machine uses any more (a daemon that died between the last clone's delete
   * and its snapshot's).
   */
  async sweep(log: Logger): Promise<void> {
    const known = new Set((await this.o.snapshots.list({ auto: true })).map((s) => s.id));
    const entries = await readdir(this.o.dir).catch(() => [] as string[]);
    for (const name of entries) {
      if (known.has(name)) continue;
      await rm(join(this.o.dir, name), { recursive: true, force: true });
      log.warn({ dir: join(this.o.dir, name) }, "removed an unfinished snapshot");
    }
    for (const s of await this.o.snapshots.list({ auto: true })) if (s.auto && s.templateKey === null) await this.machineGone(s.id, log);
  }

  private async removeFiles(id: string): Promise<void> {
    await rm(join(this.o.dir, id), { recursive: true, force: true });
    await this.o.imageUsers.forget(id);
  }
}

/**
 * Saves a VM for clones into `dir` (made here; removed again if the save fails) and leaves it
 * frozen: the caller lets it go on. Any failure is SNAPSHOT_FAILED.
 */
export async function saveForClones(vm: Vm, dir: string): Promise<VmSnapshot> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  try {
    return await vm.handle.snapshot({ dir, purpose: "clone" });
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw snapshotFailure(e, `snapshot of ${vm.handle.id}`);
  }
}

/** What a failed save becomes: SNAPSHOT_FAILED, saying what was being saved (a driver may raise other codes). */
export function snapshotFailure(e: unknown, what: string): HyperfleetError {
  const he = toHyperfleetError(e, "SNAPSHOT_FAILED");
  return he.code === "SNAPSHOT_FAILED" ? he : new HyperfleetError("SNAPSHOT_FAILED", `${what} failed: ${he.message}`, { cause: e });
}

/** What a machine created from a snapshot of `rec` inherits. */
export function snapshotSource(rec: MachineRecord): SnapshotSource {
  return {
    vcpuCount: rec.vcpuCount,
    memSizeMib: rec.memSizeMib,
    kernelImagePath: rec.kernelImagePath!,
    initrdPath: rec.initrdPath,
    kernelArgs: rec.kernelArgs,
    rootfsPath: rec.rootfsPath,
    network: rec.network !== null,
    mac: rec.network?.mac ?? null,
    imageRef: rec.imageRef,
    imageDigest: rec.imageDigest,
    imageConfig: rec.imageConfig,
    cmd: rec.cmd,
    entrypoint: rec.entrypoint,
    workdir: rec.workdir,
    user: rec.user,
    vmm: rec.vmm,
  };
}

export function viewOf(s: SnapshotRecord): SnapshotView {
  return {
    id: s.id,
    machineId: s.machineId,
    sizeBytes: s.sizeBytes,
    createdAt: s.createdAt,
    vcpuCount: s.source.vcpuCount,
    memSizeMib: s.source.memSizeMib,
    image: s.source.imageRef,
    network: s.source.network,
  };
}
