/**
 * Snapshots (docs/adr/0009). A snapshot is deleted only when no machine was created from it (the
 * machines' memory and disks come from its files); the check and the delete are one transaction,
 * and the foreign key machines.snapshot_id is the backstop.
 */
import type { Kysely, Selectable } from "kysely";
import { HyperfleetError } from "../core/errors.js";
import type { SnapshotRecord, SnapshotSource } from "../core/snapshot.js";
import type { VmSnapshot } from "../core/ports/vmm-driver.js";
import type { Database, SnapshotsTable } from "./schema.js";

export class SnapshotRepository {
  constructor(private readonly db: Kysely<Database>) {}

  async insert(s: SnapshotRecord): Promise<SnapshotRecord> {
    await this.db.insertInto("snapshots").values(toRow(s)).execute();
    return s;
  }

  async get(id: string): Promise<SnapshotRecord | undefined> {
    const row = await this.db.selectFrom("snapshots").selectAll().where("id", "=", id).executeTakeFirst();
    return row && toRecord(row);
  }

  /** Oldest first; `auto` ones (a fork's) only when asked for. */
  async list(opts: { auto?: boolean } = {}): Promise<SnapshotRecord[]> {
    let q = this.db.selectFrom("snapshots").selectAll();
    if (!opts.auto) q = q.where("auto", "=", 0);
    return (await q.orderBy("id").execute()).map(toRecord);
  }

  /** The warm template with this content key, if there is one. */
  async template(key: string): Promise<SnapshotRecord | undefined> {
    const row = await this.db.selectFrom("snapshots").selectAll().where("template_key", "=", key).executeTakeFirst();
    return row && toRecord(row);
  }

  /** Every warm template with how many machines use it, least recently used first. */
  async templates(): Promise<Array<SnapshotRecord & { users: number }>> {
    const rows = await this.db
      .selectFrom("snapshots")
      .selectAll("snapshots")
      .select((eb) => eb.selectFrom("machines").select((m) => m.fn.countAll<number>().as("n")).whereRef("machines.snapshot_id", "=", "snapshots.id").as("users"))
      .where("template_key", "is not", null)
      .orderBy("last_used_at")
      .execute();
    return rows.map((r) => ({ ...toRecord(r), users: Number(r.users ?? 0) }));
  }

  async touch(id: string, at: string): Promise<void> {
    await this.db.updateTable("snapshots").set({ last_used_at: at }).where("id", "=", id).execute();
  }

  /** Ids of the machines created from the snapshot (oldest first). */
  async users(id: string): Promise<string[]> {
    const rows = await this.db.selectFrom("machines").select("id").where("snapshot_id", "=", id).orderBy("id").execute();
    return rows.map((r) => r.id);
  }

  /**
   * Removes the record; SNAPSHOT_IN_USE (details.machines) while machines were created from it.
   * False when it was not there. The caller removes the files afterwards.
   */
  async delete(id: string): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const users = await trx.selectFrom("machines").select("id").where("snapshot_id", "=", id).orderBy("id").execute();
      if (users.length > 0) {
        const machines = users.map((u) => u.id);
        throw new HyperfleetError("SNAPSHOT_IN_USE", `snapshot ${id} is in use by ${machines.length} machine(s) created from it (${machines.slice(0, 5).join(", ")}${machines.length > 5 ? ", ..." : ""}); delete them first`, {
          details: { machines },
        });
      }
      const r = await trx.deleteFrom("snapshots").where("id", "=", id).executeTakeFirst();
      return r.numDeletedRows > 0n;
    });
  }
}

function toRow(s: SnapshotRecord): Selectable<SnapshotsTable> {
  return {
    id: s.id,
    machine_id: s.machineId,
    vm: JSON.stringify(s.vm),
    source: JSON.stringify(s.source),
    size_bytes: s.sizeBytes,
    auto: s.auto ? 1 : 0,
    created_at: s.createdAt,
    template_key: s.templateKey,
    last_used_at: s.lastUsedAt,
  };
}

function toRecord(r: Selectable<SnapshotsTable>): SnapshotRecord {
  return {
    id: r.id,
    machineId: r.machine_id,
    vm: JSON.parse(r.vm) as VmSnapshot,
    source: JSON.parse(r.source) as SnapshotSource,
    sizeBytes: r.size_bytes,
    auto: r.auto === 1,
    templateKey: r.template_key,
    createdAt: r.created_at,
    lastUsedAt: r.last_used_at,
  };
}
