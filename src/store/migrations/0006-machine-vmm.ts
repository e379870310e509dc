/**
 * The VMM each machine was created under (`qemu`, `firecracker`): its disk format, devices and
 * saved state are that VMM's, so a daemon running another refuses to boot or restore it
 * (409 VMM_MISMATCH). Machines from before this column were all QEMU's.
 */
import { sql, type Kysely, type Migration } from "kysely";

export const machineVmm: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .alterTable("machines")
      .addColumn("vmm", "text", (c) => c.notNull().defaultTo("qemu").check(sql`vmm IN ('qemu', 'firecracker')`))
      .execute();
  },

  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable("machines").dropColumn("vmm").execute();
  },
};
