/**
 * The store's lifecycle in one place: open the SQLite file, set pragmas, migrate to the latest
 * schema, hand out repositories, close once. Repositories never open or close anything.
 */
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, statSync } from "node:fs";
import { dirname } from "node:path";
import SQLite from "better-sqlite3";
import { Kysely, Migrator, SqliteDialect } from "kysely";
import { HyperfleetError } from "../core/errors.js";
import { ApiKeyRepository } from "./api-key-repository.js";
import { MachineRepository, type Clock } from "./machine-repository.js";
import { migrationProvider } from "./migrations/index.js";
import { NetworkSlotRepository } from "./network-slot-repository.js";
import { SnapshotRepository } from "./snapshot-repository.js";
import { ProxyTargetRepository } from "./proxy-targets.js";
import { SupervisionRepository } from "./supervision-repository.js";
import { VolumeRepository } from "./volume-repository.js";
import type { Database } from "./schema.js";
import { WriteGeneration } from "./write-generation.js";

export interface StoreOptions {
  /** SQLite file, or ":memory:". Its directory is created if missing. */
  path: string;
  clock?: Clock;
}

export interface Store {
  readonly machines: MachineRepository;
  readonly apiKeys: ApiKeyRepository;
  /** VM network slots (docs/adr/0008); a networked machine claims one in its insert (MachineRepository). */
  readonly networkSlots: NetworkSlotRepository;
  /** Snapshots (docs/adr/0009); machines created from one name it in snapshot_id. */
  readonly snapshots: SnapshotRepository;
  /** What the proxy reads of machines, and their access tokens (issue 14, per-VM URLs). */
  readonly proxyTargets: ProxyTargetRepository;
  /** Health checks, restart policies and their events (since 0009). */
  readonly supervision: SupervisionRepository;
  /** Volumes (docs/agents.md "Volumes"); a machine claims the ones it names in its insert. */
  readonly volumes: VolumeRepository;
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
  if (opts.path !== ":memory:") restrictFiles(opts.path);
  const sqlite = new SQLite(opts.path);
  // Deleted rows (a machine's env holds our users' API keys) are overwritten with zeros, not just
  // unlinked from the b-tree; MachineRepository.delete also checkpoints the WAL for the same reason.
  sqlite.pragma("secure_delete = ON");
  // WAL: readers (GET /machines) do not wait for the writer; NORMAL is durable across process
  // crashes, which is what daemon restart safety needs (not across power loss of the host).
  sqlite.pragma("journal_mode = WAL");
  if (opts.path !== ":memory:") restrictFiles(opts.path);
  sqlite.pragma("synchronous = NORMAL");
  sqlite.pragma("foreign_keys = ON");
  sqlite.pragma("busy_timeout = 5000");
  const writes = new WriteGeneration();
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }), plugins: [writes] });

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
    networkSlots: new NetworkSlotRepository(db, opts.clock),
    snapshots: new SnapshotRepository(db),
    proxyTargets: new ProxyTargetRepository(db, writes),
    supervision: new SupervisionRepository(db),
    volumes: new VolumeRepository(db),
    migrations: applied,
    async close() {
      if (closed) return;
      closed = true;
      await db.destroy();
    },
  };
}

/**
 * The store holds machines' env (secrets): its directory is 0700 and the database, its WAL and
 * shared-memory files 0600, also when an older version created them 0755/0644. SQLite gives new
 * -wal and -shm files the database file's mode, so creating that one 0600 first covers them; the
 * chmods fix files left by earlier versions. Called before and after opening (WAL mode creates the
 * -wal and -shm files). A sticky directory (`HYPERFLEET_DATA_DIR=/tmp`) is shared by design and is
 * left alone, as is one owned by another user: the files' own modes protect them there.
 */
function restrictFiles(path: string): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = statSync(dir);
  const sticky = (st.mode & 0o1000) !== 0;
  if (!sticky && st.uid === process.getuid?.() && (st.mode & 0o777) !== 0o700) chmodSync(dir, 0o700);
  if (!existsSync(path)) closeSync(openSync(path, "a", 0o600));
  for (const f of [path, `${path}-wal`, `${path}-shm`]) {
    if (existsSync(f)) chmodSync(f, 0o600);
  }
}
