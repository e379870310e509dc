/**
 * Volumes and their claims (docs/agents.md "Volumes"). A volume is held by at most one machine:
 * `claimVolumes` runs inside the machine's insert transaction and takes each named volume with a
 * conditional update (free -> this machine), so of two creates naming one volume exactly one wins;
 * the machine's row going (delete) frees it through the foreign key (ON DELETE SET NULL).
 */
import type { Kysely, Selectable } from "kysely";
import { HyperfleetError } from "../core/errors.js";
import type { VolumeAttachment, VolumeRecord } from "../core/volume.js";
import type { Database, VolumesTable } from "./schema.js";

export function volumeNotFound(ref: string): HyperfleetError {
  return new HyperfleetError("VOLUME_NOT_FOUND", `no volume is named or has the id '${ref}'; GET /volumes lists them, POST /volumes creates one`, { details: { volume: ref } });
}

export function volumeInUse(v: { name: string; machineId: string | null }, what: string): HyperfleetError {
  return new HyperfleetError("VOLUME_IN_USE", `volume '${v.name}' is held by machine ${v.machineId ?? "(unknown)"}: ${what}; delete that machine first (the volume keeps its data)`, {
    details: { volume: v.name, machine_id: v.machineId },
  });
}

export class VolumeRepository {
  constructor(private readonly db: Kysely<Database>) {}

  /** Inserts a free volume; a taken name is VOLUME_ALREADY_EXISTS. */
  async insert(v: Omit<VolumeRecord, "machineId">): Promise<VolumeRecord> {
    try {
      await this.db.insertInto("volumes").values({ id: v.id, name: v.name, size_mib: v.sizeMib, created_at: v.createdAt, machine_id: null }).execute();
    } catch (e) {
      if (e instanceof Error && /UNIQUE constraint failed: volumes\.name/.test(e.message)) {
        throw new HyperfleetError("VOLUME_ALREADY_EXISTS", `a volume named '${v.name}' already exists`, { cause: e, details: { field: "name" } });
      }
      throw e;
    }
    return { ...v, machineId: null };
  }

  /** By id (`vol_...`) or name. */
  async find(ref: string): Promise<VolumeRecord | undefined> {
    const row = await this.db.selectFrom("volumes").selectAll().where((eb) => eb.or([eb("id", "=", ref), eb("name", "=", ref)])).executeTakeFirst();
    return row && toVolume(row);
  }

  /** All volumes, oldest first (ULID ids sort by creation). */
  async list(): Promise<VolumeRecord[]> {
    return (await this.db.selectFrom("volumes").selectAll().orderBy("id").execute()).map(toVolume);
  }

  /**
   * Removes a free volume's row and returns it; VOLUME_IN_USE while a machine holds it (the check
   * and the delete are one statement, so a create claiming it meanwhile cannot slip between).
   */
  async delete(ref: string): Promise<VolumeRecord> {
    return this.db.transaction().execute(async (trx) => {
      const row = await trx.selectFrom("volumes").selectAll().where((eb) => eb.or([eb("id", "=", ref), eb("name", "=", ref)])).executeTakeFirst();
      if (row === undefined) throw volumeNotFound(ref);
      const r = await trx.deleteFrom("volumes").where("id", "=", row.id).where("machine_id", "is", null).executeTakeFirst();
      if (r.numDeletedRows === 0n) throw volumeInUse(toVolume(row), "it cannot be deleted");
      return toVolume(row);
    });
  }
}

/**
 * Inside the machine's insert transaction: each attachment's volume goes from free to `machineId`.
 * Gone meanwhile: VOLUME_NOT_FOUND; held by another machine: VOLUME_IN_USE (the transaction then
 * rolls back, so no volume stays claimed by a machine that was not created).
 */
export async function claimVolumes(trx: Kysely<Database>, machineId: string, attachments: readonly VolumeAttachment[]): Promise<void> {
  for (const a of attachments) {
    const r = await trx.updateTable("volumes").set({ machine_id: machineId }).where("id", "=", a.volumeId).where("machine_id", "is", null).executeTakeFirst();
    if (r.numUpdatedRows > 0n) continue;
    const row = await trx.selectFrom("volumes").selectAll().where("id", "=", a.volumeId).executeTakeFirst();
    if (row === undefined) throw volumeNotFound(a.name);
    throw volumeInUse(toVolume(row), "a volume has one writer at a time");
  }
}

function toVolume(r: Selectable<VolumesTable>): VolumeRecord {
  return { id: r.id, name: r.name, sizeMib: r.size_mib, createdAt: r.created_at, machineId: r.machine_id };
}
