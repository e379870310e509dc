/**
 * Warm image templates (docs/adr/0009): no template build step. The first cold boot of an image,
 * per shape, is snapshotted once its agent answers and before its main process starts; later
 * machines of that image and shape are restored from it (their own disk over its frozen one, their
 * own identity) and then start their main process. Templates are snapshots with a content key, kept
 * as a cache: least recently used ones no machine depends on are removed once they take more than
 * HYPERFLEET_TEMPLATE_CACHE_MAX.
 *
 * Only a machine's first boot from its image can become a template: its disk holds nothing but
 * what booting wrote. A disk a user has used never becomes another machine's.
 */
import { createHash } from "node:crypto";
import { rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { ulid } from "ulid";
import { toHyperfleetError } from "../core/errors.js";
import type { Logger } from "../core/ports/logger.js";
import type { MachineRecord } from "../core/machine.js";
import type { SnapshotRecord } from "../core/snapshot.js";
import type { MachineRepository } from "../store/machine-repository.js";
import type { SnapshotRepository } from "../store/snapshot-repository.js";
import type { Vm } from "../vmm/vm.js";
import type { ImageUsers } from "./image-users.js";
import { saveForClones, snapshotSource } from "./snapshots.js";

export interface WarmTemplatesOptions {
  machines: MachineRepository;
  snapshots: SnapshotRepository;
  imageUsers: ImageUsers;
  /** `<dataDir>/snapshots`: templates are snapshots. */
  dir: string;
  maxSize: number;
  /** What saved state the VMM can restore (its build and acceleration): part of the key. */
  vmmFingerprint: () => Promise<string>;
}

export class WarmTemplates {
  constructor(private readonly o: WarmTemplatesOptions) {}

  /** A first cold boot of an image machine: restored from a template, or captured as one. */
  eligible(rec: MachineRecord): boolean {
    // A template of a machine with volumes would hold their mounts in its memory; one for a
    // machine with volumes would restore without their disks: neither captured nor claimed.
    return rec.volumes.length === 0 && rec.imageRef !== null && rec.imageDigest !== null && rec.restoreFrom === null && rec.snapshotId === null && rec.startedAt === null && rec.kernelImagePath !== null && rec.rootfsPath !== null;
  }

  /**
   * The template this machine can start from, recorded as what it depends on (so eviction leaves
   * it alone); undefined when there is none, or it was evicted meanwhile.
   */
  async claim(rec: MachineRecord, log: Logger): Promise<SnapshotRecord | undefined> {
    const tpl = await this.o.snapshots.template(await this.key(rec));
    if (!tpl) return undefined;
    try {
      // The foreign key refuses a template deleted since it was read: then this boot is cold.
      await this.o.machines.update(rec.id, { snapshotId: tpl.id });
    } catch (e) {
      log.debug({ err: toHyperfleetError(e) }, "template gone before it could be used");
      return undefined;
    }
    await this.o.snapshots.touch(tpl.id, new Date().toISOString());
    return tpl;
  }

  /** A restore from the template failed: the machine no longer depends on it (its boot goes cold). */
  async release(rec: MachineRecord): Promise<void> {
    await this.o.machines.update(rec.id, { snapshotId: null });
  }

  /**
   * Snapshots a machine that just booted cold from its image into a template, unless one exists.
   * The guest is frozen for the save and let go right after. A failure is logged: the machine
   * boots on without one.
   */
  async capture(rec: MachineRecord, vm: Vm, log: Logger): Promise<void> {
    const t0 = Date.now();
    try {
      const key = await this.key(rec);
      if (await this.o.snapshots.template(key)) return;
      const id = `snap_${ulid()}`;
      const dir = join(this.o.dir, id);
      let vmSnap;
      try {
        vmSnap = await saveForClones(vm, dir);
      } finally {
        await vm.handle.resume();
      }
      const at = new Date().toISOString();
      const tpl: SnapshotRecord = { id, machineId: rec.id, vm: vmSnap, source: snapshotSource(rec), sizeBytes: vmSnap.sizeBytes, auto: true, templateKey: key, createdAt: at, lastUsedAt: at };
      try {
        if (rec.imageDigest !== null) await this.o.imageUsers.hold(id, rec.imageDigest);
        await this.o.snapshots.insert(tpl);
      } catch (e) {
        // Another boot of the same image and shape captured it first (template_key is unique).
        await this.o.imageUsers.forget(id);
        await rm(dir, { recursive: true, force: true });
        throw e;
      }
      log.info({ template_id: id, image: rec.imageRef, capture_ms: Date.now() - t0, size_bytes: tpl.sizeBytes }, "warm template captured");
      await this.evict(log);
    } catch (e) {
      // Two first boots of one image and shape at once: the other one's template is as good.
      if (e instanceof Error && /UNIQUE constraint failed: snapshots\.template_key/.test(e.message)) log.debug("another boot captured this template first");
      else log.warn({ err: toHyperfleetError(e) }, "could not capture a warm template; later boots of this image stay cold");
    }
  }

  /** Removes least recently used templates no machine depends on while they take more than the limit. */
  async evict(log: Logger): Promise<void> {
    const all = await this.o.snapshots.templates();
    let total = all.reduce((n, t) => n + t.sizeBytes, 0);
    for (const t of all) {
      if (total <= this.o.maxSize) break;
      if (t.users > 0) continue;
      try {
        if (!(await this.o.snapshots.delete(t.id))) continue;
      } catch {
        continue; // a machine claimed it meanwhile
      }
      await rm(join(this.o.dir, t.id), { recursive: true, force: true });
      await this.o.imageUsers.forget(t.id);
      total -= t.sizeBytes;
      log.info({ template_id: t.id, size_bytes: t.sizeBytes }, "warm template evicted");
    }
  }

  /**
   * The content key: the image disk (its path is content-addressed by digest, agent and size),
   * kernel (path and file identity), initramfs (content-addressed), kernel arguments, shape, NIC
   * and resolvers (what the guest configured at boot), and the VMM build and acceleration.
   */
  async key(rec: MachineRecord): Promise<string> {
    const kernel = await stat(rec.kernelImagePath!).catch(() => null);
    const parts = {
      v: 1,
      vmm: await this.o.vmmFingerprint(),
      rootfs: rec.rootfsPath,
      kernel: [rec.kernelImagePath, kernel?.size ?? 0, kernel?.mtimeMs ?? 0],
      initrd: rec.initrdPath,
      args: rec.kernelArgs,
      shape: [rec.vcpuCount, rec.memSizeMib],
      nic: rec.network !== null,
      dns: rec.network?.dns ?? [],
    };
    return createHash("sha256").update(JSON.stringify(parts)).digest("hex");
  }
}

