/** Machines, their status history, and hashed API keys. */
import { sql, type Kysely, type Migration } from "kysely";

export const initial: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable("machines")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("name", "text", (c) => c.notNull().unique())
      .addColumn("status", "text", (c) => c.notNull())
      .addColumn("vcpu_count", "integer", (c) => c.notNull())
      .addColumn("mem_size_mib", "integer", (c) => c.notNull())
      .addColumn("image_ref", "text")
      .addColumn("kernel_image_path", "text")
      .addColumn("initrd_path", "text")
      .addColumn("kernel_args", "text")
      .addColumn("rootfs_path", "text")
      .addColumn("run_dir", "text", (c) => c.notNull())
      .addColumn("pid", "integer")
      .addColumn("network", "text")
      .addColumn("env", "text", (c) => c.notNull().defaultTo("{}"))
      .addColumn("metadata", "text", (c) => c.notNull().defaultTo("{}"))
      .addColumn("last_error_code", "text")
      .addColumn("last_error_message", "text")
      .addColumn("created_at", "text", (c) => c.notNull())
      .addColumn("updated_at", "text", (c) => c.notNull())
      .addColumn("status_changed_at", "text", (c) => c.notNull())
      .addColumn("started_at", "text")
      .addColumn("stopped_at", "text")
      .execute();
    await db.schema.createIndex("machines_status").on("machines").column("status").execute();

    await db.schema
      .createTable("machine_events")
      .addColumn("id", "integer", (c) => c.primaryKey().autoIncrement())
      .addColumn("machine_id", "text", (c) => c.notNull().references("machines.id").onDelete("cascade"))
      .addColumn("from_status", "text")
      .addColumn("to_status", "text", (c) => c.notNull())
      .addColumn("reason", "text")
      .addColumn("at", "text", (c) => c.notNull())
      .execute();
    await db.schema.createIndex("machine_events_machine").on("machine_events").column("machine_id").execute();

    await db.schema
      .createTable("api_keys")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("key_hash", "text", (c) => c.notNull().unique())
      .addColumn("source", "text", (c) => c.notNull())
      .addColumn("created_at", "text", (c) => c.notNull().defaultTo(sql`CURRENT_TIMESTAMP`))
      .execute();
  },

  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropTable("api_keys").execute();
    await db.schema.dropTable("machine_events").execute();
    await db.schema.dropTable("machines").execute();
  },
};
