/**
 * VM network slots (docs/adr/0008-vm-network-topology.md): slot i of HYPERFLEET_SUBNET holds one
 * machine's addresses. The primary key makes two holders of one slot impossible, whatever the
 * writer; a machine holds at most one slot, released with the machine.
 */
import type { Kysely, Migration } from "kysely";

export const networkSlots: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable("network_slots")
      .addColumn("slot", "integer", (c) => c.primaryKey())
      .addColumn("machine_id", "text", (c) => c.notNull().unique().references("machines.id").onDelete("cascade"))
      .addColumn("allocated_at", "text", (c) => c.notNull())
      .execute();
  },

  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropTable("network_slots").execute();
  },
};
