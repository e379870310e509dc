/**
 * Volumes (docs/agents.md "Volumes"): create, list, get and delete them (the VolumeServicePort),
 * resolve a create request's `volumes` into attachments its insert claims, format a volume before
 * its first boot, and mount a machine's volumes through the agent after each boot.
 */
import { ulid } from "ulid";
import { HyperfleetError } from "../core/errors.js";
import type { Logger } from "../core/ports/logger.js";
import type { MachineRecord } from "../core/machine.js";
import type { DiskSpec, VmmKind } from "../core/ports/vmm-driver.js";
import { checkVolumeRequests, normalMount, volumeDevice, volumeSerial, VOLUME_FSTYPE, type VolumeAttachment, type VolumeRecord, type VolumeRequest } from "../core/volume.js";
import type { CreateVolumeRequest, VolumeServicePort } from "../core/ports/services.js";
import { volumeInUse, volumeNotFound, type VolumeRepository } from "../store/volume-repository.js";
import type { AgentClient } from "../agent/client.js";
import { createVolumeFile, formatIfNew, removeVolumeFile, volumeFileIds, volumePath, volumesDir } from "./volume-files.js";

export interface MachineVolumesOptions {
  repo: VolumeRepository;
  dataDir: string;
  /** HYPERFLEET_VOLUME_MAX_SIZE_MIB. */
  maxSizeMib: number;
  log: Logger;
}

export class MachineVolumes implements VolumeServicePort {
  constructor(private readonly o: MachineVolumesOptions) {}

  async create(req: CreateVolumeRequest): Promise<VolumeRecord> {
    if (req.sizeMib > this.o.maxSizeMib) {
      throw new HyperfleetError("INVALID_ARGUMENT", `size_mib: at most ${this.o.maxSizeMib} (HYPERFLEET_VOLUME_MAX_SIZE_MIB)`, { details: { field: "size_mib" } });
    }
    const id = `vol_${ulid()}`;
    const path = volumePath(this.o.dataDir, id);
    await createVolumeFile(path, volumesDir(this.o.dataDir), req.sizeMib);
    try {
      const v = await this.o.repo.insert({ id, name: req.name, sizeMib: req.sizeMib, createdAt: new Date().toISOString() });
      this.o.log.info({ volume_id: id, name: req.name, size_mib: req.sizeMib }, "volume created");
      return v;
    } catch (e) {
      await removeVolumeFile(path);
      throw e;
    }
  }

  list(): Promise<VolumeRecord[]> {
    return this.o.repo.list();
  }

  async get(ref: string): Promise<VolumeRecord> {
    const v = await this.o.repo.find(ref);
    if (v === undefined) throw volumeNotFound(ref);
    return v;
  }

  /** VOLUME_IN_USE while a machine holds it; else its row, then its file (data and all). */
  async delete(ref: string): Promise<void> {
    const v = await this.o.repo.delete(ref);
    await removeVolumeFile(volumePath(this.o.dataDir, v.id));
    this.o.log.info({ volume_id: v.id, name: v.name }, "volume deleted");
  }

  /**
   * At startup: removes volume files no volume owns. A daemon that died between creating a file
   * and recording its volume, or between a volume's delete and its file's, leaves one behind.
   */
  async sweep(): Promise<void> {
    const known = new Set((await this.o.repo.list()).map((v) => v.id));
    for (const id of await volumeFileIds(volumesDir(this.o.dataDir))) {
      if (known.has(id)) continue;
      await removeVolumeFile(volumePath(this.o.dataDir, id));
      this.o.log.warn({ volume_id: id }, "removed a volume file no volume owns (left by an interrupted create or delete)");
    }
  }

  /**
   * A create request's volumes as the machine records them; the insert claims them. Checked
   * early, for a clear answer before anything is written: an unknown name (VOLUME_NOT_FOUND), one
   * already held (VOLUME_IN_USE); the insert's claim is what decides a race.
   */
  async attachments(reqs: readonly VolumeRequest[]): Promise<VolumeAttachment[]> {
    checkVolumeRequests(reqs);
    const out: VolumeAttachment[] = [];
    for (const r of reqs) {
      const v = await this.o.repo.find(r.name);
      if (v === undefined || v.name !== r.name) throw volumeNotFound(r.name);
      if (v.machineId !== null) throw volumeInUse(v, "a volume has one writer at a time");
      out.push({ volumeId: v.id, name: v.name, mount: normalMount(r.mount), readOnly: r.readOnly ?? false });
    }
    return out;
  }

  /**
   * The machine's volume disks, in its order, formatted first if new. Attached read-write even
   * for a read-only mount: ext4 replays a journal left by a writer that was killed, which a
   * read-only disk would refuse; the MOUNT is what makes it read-only.
   */
  async disks(rec: MachineRecord, signal?: AbortSignal): Promise<DiskSpec[]> {
    const disks: DiskSpec[] = [];
    for (const [i, a] of rec.volumes.entries()) {
      const path = volumePath(this.o.dataDir, a.volumeId);
      if (await formatIfNew(path, a.name, signal)) this.o.log.info({ machine_id: rec.id, volume: a.name }, "volume formatted (first use)");
      disks.push({ path, format: "raw", serial: volumeSerial(i) });
    }
    return disks;
  }
}

/**
 * Mounts each volume where the machine asked, in order (the agent creates the target). QEMU gives
 * the disks serials; Firecracker cannot, and its drives follow the root disk in order. `user`, the
 * user the machine's processes run as (its own or its image's), gets a new volume's root, so an
 * image that does not run as root can write to it.
 */
export async function mountVolumes(agent: AgentClient, volumes: readonly VolumeAttachment[], vmm: VmmKind, user: string | null): Promise<void> {
  for (const [i, a] of volumes.entries()) {
    const disk = vmm === "qemu" ? { serial: volumeSerial(i) } : { source: volumeDevice(i) };
    await agent.mount({ target: a.mount, fstype: VOLUME_FSTYPE, readOnly: a.readOnly, ...disk, ...(user !== null && { user }) });
  }
}
