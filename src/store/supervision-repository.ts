/**
 * Machines' health checks, restart policies and restart counters (machine_supervision), and their
 * recent restart and health events (workload_events, bounded per machine). Both go with the
 * machine's row (ON DELETE CASCADE).
 */
import type { Kysely } from "kysely";
import type { Database } from "./schema.js";
import type { HealthCheckSpec, RestartPolicy, Supervision, WorkloadEvent } from "../core/health.js";

/** Events kept per machine: older ones are dropped as new ones come. */
export const EVENTS_KEPT = 200;

export class SupervisionRepository {
  constructor(private readonly db: Kysely<Database>) {}

  async insert(machineId: string, healthCheck: HealthCheckSpec | null, restartPolicy: RestartPolicy): Promise<void> {
    await this.db
      .insertInto("machine_supervision")
      .values({ machine_id: machineId, health_check: healthCheck === null ? null : JSON.stringify(healthCheck), restart_policy: JSON.stringify(restartPolicy), restart_count: 0, restart_streak: 0 })
      .execute();
  }

  /** Every machine's that has a row (machines created before 0009 have none: no check, policy `no`). */
  async all(): Promise<Map<string, Supervision>> {
    const rows = await this.db.selectFrom("machine_supervision").selectAll().execute();
    return new Map(rows.map((r) => [r.machine_id, {
      healthCheck: r.health_check === null ? null : (JSON.parse(r.health_check) as HealthCheckSpec),
      restartPolicy: JSON.parse(r.restart_policy) as RestartPolicy,
      restartCount: r.restart_count,
      restartStreak: r.restart_streak,
    }]));
  }

  async setCounters(machineId: string, restartCount: number, restartStreak: number): Promise<void> {
    await this.db.updateTable("machine_supervision").set({ restart_count: restartCount, restart_streak: restartStreak }).where("machine_id", "=", machineId).execute();
  }

  /** Appends an event and drops what is beyond the last EVENTS_KEPT of the machine. A machine already deleted gets none. */
  async addEvent(machineId: string, e: WorkloadEvent): Promise<void> {
    const { at, ...rest } = e;
    await this.db.transaction().execute(async (trx) => {
      const exists = await trx.selectFrom("machines").select("id").where("id", "=", machineId).executeTakeFirst();
      if (!exists) return;
      await trx.insertInto("workload_events").values({ machine_id: machineId, event: JSON.stringify(rest), at }).execute();
      const cut = await trx.selectFrom("workload_events").select("id").where("machine_id", "=", machineId).orderBy("id", "desc").offset(EVENTS_KEPT).limit(1).executeTakeFirst();
      if (cut) await trx.deleteFrom("workload_events").where("machine_id", "=", machineId).where("id", "<=", cut.id).execute();
    });
  }

  /** The machine's events, oldest first. */
  async events(machineId: string): Promise<WorkloadEvent[]> {
    const rows = await this.db.selectFrom("workload_events").selectAll().where("machine_id", "=", machineId).orderBy("id").execute();
    return rows.map((r) => ({ ...(JSON.parse(r.event) as Omit<WorkloadEvent, "at">), at: r.at }));
  }
}
