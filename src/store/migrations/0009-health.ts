/**
 * Health checks and restart policies (issue 14): each machine's settings and restart counters
 * (machine_supervision; a daemon restart must not lose the policy), and the recent restart and
 * health events of each machine (workload_events, kept to the last 200 per machine).
 */
import type { Kysely, Migration } from "kysely";

export const health: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable("machine_supervision")
      .addColumn("machine_id", "text", (c) => c.primaryKey().references("machines.id").onDelete("cascade"))
      .addColumn("health_check", "text")
      .addColumn("restart_policy", "text", (c) => c.notNull())
      .addColumn("restart_count", "integer", (c) => c.notNull().defaultTo(0))
      .addColumn("restart_streak", "integer", (c) => c.notNull().defaultTo(0))
      .execute();
    await db.schema
      .createTable("workload_events")
      .addColumn("id", "integer", (c) => c.primaryKey().autoIncrement())
      .addColumn("machine_id", "text", (c) => c.notNull().references("machines.id").onDelete("cascade"))
      .addColumn("event", "text", (c) => c.notNull())
      .addColumn("at", "text", (c) => c.notNull())
      .execute();
    await db.schema.createIndex("workload_events_machine").on("workload_events").columns(["machine_id", "id"]).execute();
  },

  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropTable("workload_events").execute();
    await db.schema.dropTable("machine_supervision").execute();
  },
};
