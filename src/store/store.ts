/**
 * The store's lifecycle in one place: open the SQLite file, set pragmas, migrate to the latest
 * schema, hand out repositories, close once. Repositories never open or close anything.
 */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import SQLite from "better-sqlite3";
import { Kysely, Migrator, SqliteDialect } from "kysely";
import { HyperfleetError } from "../core/errors.js";
import { ApiKeyRepository } from "./api-key-repository.js";
import { MachineRepository, type Clock } from "./machine-repository.js";
import { migrationProvider } from "./migrations/index.js";
import type { Database } from "./schema.js";

export interface StoreOptions {
  /** SQLite file, or ":memory:". Its directory is created if missing. */
  path: string;
  clock?: Clock;
}

export interface Store {
  readonly machines: MachineRepository;
  readonly apiKeys: ApiKeyRepository;
  /** Applied migration names, oldest first (for logs and tests). */
  readonly migrations: readonly string[];
  /** Closes the database; later calls are no-ops. */
  close(): Promise<void>;
}

/**
 * Opens (and migrates) the store.
 *
 * @example
 * const store = await openStore({ path: join(cfg.dataDir, "hyperfleet.db") });
 */
export async function openStore(opts: StoreOptions): Promise<Store> {
  if (opts.path !== ":memory:") mkdirSync(dirname(opts.path), { recursive: true, mode: 0o700 });
  const sqlite = new SQLite(opts.path);
  // WAL: readers (GET /machines) do not wait for the writer; NORMAL is durable across process
  // crashes, which is what daemon restart safety needs (not across power loss of the host).
  sqlite.pragma("journal_mode = WAL");
  sqlite.pragma("synchronous = NORMAL");
  sqlite.pragma("foreign_keys = ON");
  sqlite.pragma("busy_timeout = 5000");
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });

  const { error, results } = await new Migrator({ db, provider: migrationProvider }).migrateToLatest();
  if (error !== undefined) {
    await db.destroy();
    throw new HyperfleetError("INTERNAL", `database migration failed for ${opts.path}: ${String(error)}`, {
      cause: error,
    });
  }
  const applied = (results ?? []).filter((r) => r.status === "Success").map((r) => r.migrationName);

  let closed = false;
  return {
    machines: new MachineRepository(db, opts.clock),
    apiKeys: new ApiKeyRepository(db),
    migrations: applied,
    async close() {
      if (closed) return;
      closed = true;
      await db.destroy();
    },
  };
}
