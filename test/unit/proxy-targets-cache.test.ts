/**
 * The proxy's lookups are kept between writes (src/store/proxy-targets.ts, write-generation.ts): a
 * kept answer is reused while nothing was written, any write (a rotated token, a status change,
 * raw SQL in a transaction, a delete) is seen by the very next lookup, and a miss is never kept.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import Database from "better-sqlite3";
import { Kysely, Migrator, SqliteDialect, sql } from "kysely";
import { MachineRepository } from "../../src/store/machine-repository.js";
import { migrationProvider } from "../../src/store/migrations/index.js";
import { ProxyTargetRepository } from "../../src/store/proxy-targets.js";
import type { Database as Schema } from "../../src/store/schema.js";
import { WriteGeneration } from "../../src/store/write-generation.js";
import { newMachine } from "../store-fixtures.js";

async function migrated(plugins: WriteGeneration[] = []): Promise<Kysely<Schema>> {
  const db = new Kysely<Schema>({ dialect: new SqliteDialect({ database: new Database(":memory:") }), plugins });
  const { error } = await new Migrator({ db, provider: migrationProvider }).migrateToLatest();
  assert.equal(error, undefined);
  return db;
}

test("write generation: reads leave it, every write moves it (raw SQL and transactions too)", async () => {
  const writes = new WriteGeneration();
  const db = await migrated([writes]);
  try {
    const at = writes.value;
    await db.selectFrom("machines").selectAll().execute();
    await sql`SELECT 1`.execute(db);
    assert.equal(writes.value, at, "reads are not writes");
    await new MachineRepository(db).insert(newMachine("vm_a"));
    const afterInsert = writes.value;
    assert.ok(afterInsert > at);
    await db.transaction().execute(async (trx) => {
      await sql`UPDATE machines SET name = 'b' WHERE id = 'vm_a'`.execute(trx);
    });
    assert.ok(writes.value > afterInsert);
  } finally {
    await db.destroy();
  }
});

test("proxy lookups: kept while nothing is written, and a write is seen by the next lookup", async () => {
  const writes = new WriteGeneration();
  const db = await migrated([writes]);
  const machines = new MachineRepository(db);
  const targets = new ProxyTargetRepository(db, writes);
  try {
    await machines.insert({ ...newMachine("vm_a", "App"), services: [{ port: 80, visibility: "private" }], accessToken: "tok-1" });
    const first = await targets.byId("vm_a");
    assert.equal(first?.token, "tok-1");
    const kept = targets.byId("vm_a");
    assert.ok(!(kept instanceof Promise), "a kept answer is a value: the proxy routes without a turn of the event loop");
    assert.equal(kept, first, "no write in between: the kept answer itself");
    assert.equal((await targets.byName("APP"))[0]?.id, "vm_a");
    const keptByName = targets.byName("app");
    assert.ok(!(keptByName instanceof Promise) && keptByName[0]?.id === "vm_a");

    assert.equal(await targets.setToken("vm_a", "tok-2"), true);
    assert.equal((await targets.byId("vm_a"))?.token, "tok-2", "a rotated token counts from the next request");
    assert.equal((await targets.byName("app"))[0]?.token, "tok-2");

    assert.ok(await machines.transition("vm_a", ["created"], "starting"));
    assert.equal((await targets.byId("vm_a"))?.status, "starting");

    await db.transaction().execute(async (trx) => {
      await sql`UPDATE machines SET status = 'stopped' WHERE id = 'vm_a'`.execute(trx);
    });
    assert.equal((await targets.byId("vm_a"))?.status, "stopped");

    assert.equal(await machines.delete("vm_a"), true);
    assert.equal(await targets.byId("vm_a"), undefined);
    assert.deepEqual(await targets.byName("app"), []);
  } finally {
    await db.destroy();
  }
});

test("proxy lookups: a miss is never kept, so made-up names fill nothing", async () => {
  const db = await migrated();
  // A count that never moves: whatever is kept stays kept, so only an unkept miss sees the insert.
  const frozen = { value: 0 };
  const targets = new ProxyTargetRepository(db, frozen);
  const machines = new MachineRepository(db);
  try {
    assert.equal(await targets.byId("vm_later"), undefined);
    assert.deepEqual(await targets.byName("later"), []);
    await machines.insert(newMachine("vm_later", "later"));
    assert.equal((await targets.byId("vm_later"))?.id, "vm_later");
    assert.equal((await targets.byName("later"))[0]?.id, "vm_later");
    // And a hit is kept: with the count frozen, a status change is not seen (what the count is for).
    assert.ok(await machines.transition("vm_later", ["created"], "starting"));
    assert.equal((await targets.byId("vm_later"))?.status, "created");
  } finally {
    await db.destroy();
  }
});
