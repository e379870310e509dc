/**
 * Volumes (docs/agents.md "Volumes"): named persistent disks. `machine_id` is the claim: set in
 * the create transaction of the machine that names it, so a second machine finds it taken (one
 * writer at a time); ON DELETE SET NULL gives it back when that machine's row goes, data kept.
 * machines.volumes records where each is mounted, in disk order.
 */
import { sql, type Kysely, type Migration } from "kysely";

export const volumes: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable("volumes")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("name", "text", (c) => c.notNull().unique())
      .addColumn("size_mib", "integer", (c) => c.notNull().check(sql`size_mib > 0`))
      .addColumn("created_at", "text", (c) => c.notNull())
      .addColumn("machine_id", "text", (c) => c.references("machines.id").onDelete("set null"))
      .execute();
    await db.schema.createIndex("volumes_machine").on("volumes").column("machine_id").execute();
    await db.schema.alterTable("machines").addColumn("volumes", "text", (c) => c.notNull().defaultTo("[]")).execute();
  },

  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable("machines").dropColumn("volumes").execute();
    await db.schema.dropTable("volumes").execute();
  },
};
