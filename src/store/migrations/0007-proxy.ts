/**
 * Per-VM URLs (issue 14): the guest ports a machine serves through the proxy, and its access
 * token (private services need it). Machines from before get no services and a fresh token, so
 * `GET /machines/:id/token` works for every machine.
 */
import { sql, type Kysely, type Migration } from "kysely";

export const proxy: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable("machines").addColumn("services", "text", (c) => c.notNull().defaultTo("[]")).execute();
    await db.schema.alterTable("machines").addColumn("access_token", "text").execute();
    await sql`UPDATE machines SET access_token = lower(hex(randomblob(32))) WHERE access_token IS NULL`.execute(db);
    // The proxy finds `<name>.<domain>` by name ignoring case, on every request.
    await sql`CREATE INDEX machines_name_lower ON machines (lower(name))`.execute(db);
  },

  async down(db: Kysely<unknown>): Promise<void> {
    await sql`DROP INDEX machines_name_lower`.execute(db);
    await db.schema.alterTable("machines").dropColumn("access_token").execute();
    await db.schema.alterTable("machines").dropColumn("services").execute();
  },
};
