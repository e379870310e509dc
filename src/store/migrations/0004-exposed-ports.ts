/**
 * Exposed ports (docs/adr/0008-vm-network-topology.md): host_ip:host_port/protocol -> a machine's
 * guest port. A DNATed port has no socket to hold it, so this table is what keeps two machines off
 * one port: UNIQUE (host_ip, host_port, protocol) for the exact clash, and the create transaction
 * for the 0.0.0.0-vs-one-address overlap, which a constraint cannot express. Released with the machine.
 */
import { sql, type Kysely, type Migration } from "kysely";

export const exposedPorts: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable("exposed_ports")
      .addColumn("machine_id", "text", (c) => c.notNull().references("machines.id").onDelete("cascade"))
      .addColumn("protocol", "text", (c) => c.notNull().check(sql`protocol IN ('tcp', 'udp')`))
      .addColumn("host_ip", "text", (c) => c.notNull())
      .addColumn("host_port", "integer", (c) => c.notNull().check(sql`host_port BETWEEN 1 AND 65535`))
      .addColumn("guest_port", "integer", (c) => c.notNull().check(sql`guest_port BETWEEN 1 AND 65535`))
      .addUniqueConstraint("exposed_ports_host_unique", ["host_ip", "host_port", "protocol"])
      .execute();
    await db.schema.createIndex("exposed_ports_machine").on("exposed_ports").column("machine_id").execute();
  },

  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropTable("exposed_ports").execute();
  },
};
