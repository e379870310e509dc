/**
 * Machine secrets (docs/agents.md, "Secrets"): a JSON object name -> sealed value, each value
 * AES-256-GCM under the daemon's secret key with the machine id and name as additional data
 * (src/host/secret-box.ts). Names are plain: the machine shows them as `secret_names`.
 */
import type { Kysely, Migration } from "kysely";

export const secrets: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable("machines").addColumn("secrets", "text", (c) => c.notNull().defaultTo("{}")).execute();
  },

  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable("machines").dropColumn("secrets").execute();
  },
};
