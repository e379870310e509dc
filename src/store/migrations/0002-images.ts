/**
 * Machines booted from OCI images: the resolved digest and image config, the requested disk size,
 * the last pull's progress, and the per-machine overrides of the image's run settings. Registry
 * credentials have no column on purpose: they are never stored.
 */
import type { Kysely, Migration } from "kysely";

const COLUMNS: ReadonlyArray<[name: string, type: "text" | "integer"]> = [
  ["image_digest", "text"],
  ["image_config", "text"],
  ["image_size_mib", "integer"],
  ["image_pull", "text"],
  ["cmd", "text"],
  ["entrypoint", "text"],
  ["workdir", "text"],
  ["user", "text"],
];

export const images: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    for (const [name, type] of COLUMNS) await db.schema.alterTable("machines").addColumn(name, type).execute();
  },

  async down(db: Kysely<unknown>): Promise<void> {
    for (const [name] of [...COLUMNS].reverse()) await db.schema.alterTable("machines").dropColumn(name).execute();
  },
};
