/**
 * Snapshots (docs/adr/0009), warm image templates among them (`template_key`), and what machines keep of them: the snapshot a machine was created
 * from (`snapshot_id`: its memory and disk come from the snapshot's files, so the snapshot cannot
 * be deleted while the machine exists; the foreign key is the backstop of the service's 409), and
 * what its next boot restores (`restore_from`: `snapshot` or `suspend`; null boots afresh).
 */
import { sql, type Kysely, type Migration } from "kysely";

export const snapshots: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable("snapshots")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("machine_id", "text", (c) => c.notNull())
      .addColumn("vm", "text", (c) => c.notNull())
      .addColumn("source", "text", (c) => c.notNull())
      .addColumn("size_bytes", "integer", (c) => c.notNull())
      .addColumn("auto", "integer", (c) => c.notNull().defaultTo(0).check(sql`auto IN (0, 1)`))
      .addColumn("created_at", "text", (c) => c.notNull())
      // A warm image template (docs/adr/0009): its content key, and when a machine was last restored from it (LRU).
      .addColumn("template_key", "text", (c) => c.unique())
      .addColumn("last_used_at", "text", (c) => c.notNull())
      .execute();
    await db.schema.alterTable("machines").addColumn("snapshot_id", "text", (c) => c.references("snapshots.id").onDelete("restrict")).execute();
    await db.schema
      .alterTable("machines")
      .addColumn("restore_from", "text", (c) => c.check(sql`restore_from IN ('snapshot', 'suspend')`))
      .execute();
    await db.schema.createIndex("machines_snapshot").on("machines").column("snapshot_id").execute();
  },

  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropIndex("machines_snapshot").execute();
    await db.schema.alterTable("machines").dropColumn("restore_from").execute();
    await db.schema.alterTable("machines").dropColumn("snapshot_id").execute();
    await db.schema.dropTable("snapshots").execute();
  },
};
