/**
 * Network slots (docs/adr/0008): which machine holds which /31 of HYPERFLEET_SUBNET. The choice of
 * slot is the caller's pure function (src/network/address-plan.ts `nextFreeSlot`); this repository
 * makes reading the used set and claiming one slot a single write transaction.
 */
import { sql, type Kysely } from "kysely";
import { HyperfleetError } from "../core/errors.js";
import type { Database } from "./schema.js";

export interface SlotLease {
  slot: number;
  machineId: string;
  allocatedAt: string;
}

/** Picks a free slot given the used ones; undefined when none is left. */
export type SlotPicker = (used: ReadonlySet<number>) => number | undefined;

export class NetworkSlotRepository {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /**
   * The machine's slot: the one it holds (so a retried start after a crash gets the same
   * addresses), else a new one from `pick`. BEGIN IMMEDIATE takes the write lock before the read,
   * so a second writer (another connection or process) waits instead of picking the same slot;
   * the primary key is the backstop. Throws INSUFFICIENT_CAPACITY when
   * `pick` finds nothing.
   */
  async allocate(machineId: string, pick: SlotPicker): Promise<SlotLease> {
    return this.db.connection().execute(async (conn) => {
      await sql`BEGIN IMMEDIATE`.execute(conn);
      try {
        const lease = await claimSlot(conn, machineId, pick, this.now().toISOString());
        await sql`COMMIT`.execute(conn);
        return lease;
      } catch (e) {
        await sql`ROLLBACK`.execute(conn);
        throw e;
      }
    });
  }

  /** Gives the machine's slot back; true if it held one. */
  async release(machineId: string): Promise<boolean> {
    const r = await this.db.deleteFrom("network_slots").where("machine_id", "=", machineId).executeTakeFirst();
    return r.numDeletedRows > 0n;
  }

  async list(): Promise<SlotLease[]> {
    const rows = await this.db.selectFrom("network_slots").selectAll().orderBy("slot").execute();
    return rows.map((r) => ({ slot: r.slot, machineId: r.machine_id, allocatedAt: r.allocated_at }));
  }
}

/**
 * Inside the caller's write transaction (BEGIN IMMEDIATE, so no other writer reads the same used
 * set): the slot the machine holds, else the one `pick` chooses among the free ones, inserted.
 * INSUFFICIENT_CAPACITY when none is free. Also used by MachineRepository's networked insert.
 */
export async function claimSlot(conn: Kysely<Database>, machineId: string, pick: SlotPicker, at: string): Promise<SlotLease> {
  const held = await conn.selectFrom("network_slots").selectAll().where("machine_id", "=", machineId).executeTakeFirst();
  if (held !== undefined) return { slot: held.slot, machineId, allocatedAt: held.allocated_at };
  const rows = await conn.selectFrom("network_slots").select("slot").execute();
  const slot = pick(new Set(rows.map((r) => r.slot)));
  if (slot === undefined) {
    throw new HyperfleetError("INSUFFICIENT_CAPACITY", "no free network address left in HYPERFLEET_SUBNET; delete machines with a network, or create this one with \"network\": false");
  }
  await conn.insertInto("network_slots").values({ slot, machine_id: machineId, allocated_at: at }).execute();
  return { slot, machineId, allocatedAt: at };
}
