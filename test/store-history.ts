/**
 * A machine's status history as the store records it (machine_events), read straight from the
 * SQLite file: nothing in Hyperfleet reads the history back, only tests check what was written.
 */
import SQLite from "better-sqlite3";

export interface RecordedEvent {
  fromStatus: string | null;
  toStatus: string;
  reason: string | null;
}

/** Oldest first; [] when the machine has none (or is gone with its history). */
export function statusHistory(dbPath: string, machineId: string): RecordedEvent[] {
  const db = new SQLite(dbPath, { readonly: true, fileMustExist: true });
  try {
    const rows = db
      .prepare("SELECT from_status, to_status, reason FROM machine_events WHERE machine_id = ? ORDER BY id")
      .all(machineId) as Array<{ from_status: string | null; to_status: string; reason: string | null }>;
    return rows.map((r) => ({ fromStatus: r.from_status, toStatus: r.to_status, reason: r.reason }));
  } finally {
    db.close();
  }
}
