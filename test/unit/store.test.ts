/** The store against a real SQLite file: migrations, machines, transitions, history, keys. */
import { test } from "node:test";
import assert from "node:assert/strict";
import Database from "better-sqlite3";
import { Kysely, Migrator, SqliteDialect } from "kysely";
import { openStore } from "../../src/store/index.js";
import { migrationProvider } from "../../src/store/migrations/index.js";
import { newMachine, tempStore } from "../store-fixtures.js";
import { statusHistory } from "../store-history.js";


test("migrations run once; reopening keeps data", async () => {
  const { store, path } = await tempStore();
  assert.deepEqual(store.migrations, ["0001-initial", "0002-images", "0003-network-slots", "0004-exposed-ports", "0005-snapshots", "0006-machine-vmm", "0007-proxy", "0008-secrets", "0009-health", "0010-volumes"]);
  await store.machines.insert(newMachine("vm_1"));
  await store.close();
  await store.close(); // idempotent
  const again = await openStore({ path });
  assert.deepEqual(again.migrations, []);
  assert.equal((await again.machines.get("vm_1"))?.name, "vm_1");
  await again.close();
});

test("0006: machines from before it get vmm 'qemu'; the column takes only known VMMs", async () => {
  const { store, path } = await tempStore();
  await store.close();
  // Back to a 0005 database holding one machine, as an older daemon left it.
  const db = new Kysely<unknown>({ dialect: new SqliteDialect({ database: new Database(path) }) });
  const down = await new Migrator({ db, provider: migrationProvider }).migrateTo("0005-snapshots");
  assert.equal(down.error, undefined);
  await db.destroy();
  const raw = new Database(path);
  raw.prepare(`INSERT INTO machines (id, name, status, vcpu_count, mem_size_mib, run_dir, env, metadata, created_at, updated_at, status_changed_at)
               VALUES ('vm_old', 'old', 'stopped', 1, 256, '/run/vm_old', '{}', '{}', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')`).run();
  assert.equal((raw.prepare("PRAGMA table_info(machines)").all() as { name: string }[]).some((c) => c.name === "vmm"), false);
  raw.close();
  const again = await openStore({ path });
  assert.equal(again.migrations[0], "0006-machine-vmm");
  assert.deepEqual((await again.machines.get("vm_old"))?.secretNames, [], "0008: older machines have no secrets");
  assert.equal((await again.machines.get("vm_old"))?.vmm, "qemu");
  assert.equal((await again.machines.insert({ ...newMachine("vm_fc"), vmm: "firecracker" })).vmm, "firecracker");
  await again.close();
  const check = new Database(path);
  assert.throws(() => check.prepare("UPDATE machines SET vmm = 'bhyve' WHERE id = 'vm_old'").run(), /CHECK constraint failed/);
  check.close();
});

test("insert, get, list with status filter, JSON fields round-trip", async () => {
  const { store } = await tempStore();
  const a = await store.machines.insert(newMachine("vm_a"));
  await store.machines.insert(newMachine("vm_b"));
  assert.equal(a.status, "created");
  assert.deepEqual(a.env, { A: "1" });
  assert.deepEqual(a.metadata, { team: "x" });
  assert.equal(a.createdAt, a.statusChangedAt);
  await store.machines.transition("vm_b", ["created"], "starting");
  assert.deepEqual((await store.machines.list()).map((m) => m.id), ["vm_a", "vm_b"]);
  assert.deepEqual((await store.machines.list({ status: ["starting"] })).map((m) => m.id), ["vm_b"]);
  assert.deepEqual((await store.machines.list({ status: ["created", "starting"] })).length, 2);
  assert.equal(await store.machines.get("vm_nope"), undefined);
  await store.close();
});

test("names are unique: MACHINE_ALREADY_EXISTS on field name", async () => {
  const { store } = await tempStore();
  await store.machines.insert(newMachine("vm_1", "web"));
  await assert.rejects(store.machines.insert(newMachine("vm_2", "web")), (e: { code?: string; details?: { field?: string } }) => {
    assert.equal(e.code, "MACHINE_ALREADY_EXISTS");
    assert.equal(e.details?.field, "name");
    return true;
  });
  await store.close();
});

test("transition is conditional, timestamped, and recorded in the history", async () => {
  let now = new Date("2030-01-01T00:00:00.000Z");
  const { store, path } = await tempStore(() => now);
  await store.machines.insert(newMachine("vm_t"));
  now = new Date("2030-01-01T00:00:05.000Z");
  const s = await store.machines.transition("vm_t", ["created"], "starting", { pid: 42 }, "start requested");
  assert.equal(s?.status, "starting");
  assert.equal(s?.pid, 42);
  assert.equal(s?.statusChangedAt, "2030-01-01T00:00:05.000Z");
  // Lost race: status is no longer `created`.
  assert.equal(await store.machines.transition("vm_t", ["created"], "starting"), undefined);
  now = new Date("2030-01-01T00:00:07.000Z");
  const r = await store.machines.transition("vm_t", ["starting"], "running");
  assert.equal(r?.startedAt, "2030-01-01T00:00:07.000Z");
  const f = await store.machines.transition("vm_t", ["running"], "failed", { lastError: { code: "VMM_EXITED", message: "gone" } });
  assert.deepEqual(f?.lastError, { code: "VMM_EXITED", message: "gone" });
  assert.equal(f?.stoppedAt, "2030-01-01T00:00:07.000Z");
  const cleared = await store.machines.transition("vm_t", ["failed"], "starting", { lastError: null });
  assert.equal(cleared?.lastError, null);
  const ev = statusHistory(path, "vm_t");
  assert.deepEqual(
    ev.map((e) => [e.fromStatus, e.toStatus]),
    [[null, "created"], ["created", "starting"], ["starting", "running"], ["running", "failed"], ["failed", "starting"]],
  );
  assert.equal(ev[1]?.reason, "start requested");
  assert.equal(await store.machines.transition("vm_gone", ["created"], "starting"), undefined);
  await store.close();
});

test("concurrent transitions: exactly one wins", async () => {
  const { store } = await tempStore();
  await store.machines.insert(newMachine("vm_c"));
  const results = await Promise.all(
    Array.from({ length: 10 }, () => store.machines.transition("vm_c", ["created"], "starting")),
  );
  assert.equal(results.filter((r) => r !== undefined).length, 1);
  await store.close();
});

test("update and delete (history goes with the machine)", async () => {
  const { store, path } = await tempStore();
  await store.machines.insert(newMachine("vm_d"));
  assert.equal((await store.machines.update("vm_d", { pid: 7 }))?.pid, 7);
  assert.equal(await store.machines.delete("vm_d"), true);
  assert.equal(await store.machines.delete("vm_d"), false);
  assert.deepEqual(statusHistory(path, "vm_d"), []);
  await store.close();
});

test("api keys: only hashes are stored", async () => {
  const { store } = await tempStore();
  await store.apiKeys.insert({ id: "key_1", keyHash: "ab".repeat(32), source: "generated", createdAt: new Date(0) });
  const keys = await store.apiKeys.list();
  assert.equal(keys.length, 1);
  assert.equal(keys[0]?.keyHash, "ab".repeat(32));
  await store.close();
});

test("an error code the store holds but this daemon does not know reads back as INTERNAL", async () => {
  const { store, path } = await tempStore();
  await store.machines.insert(newMachine("vm_e"));
  await store.machines.update("vm_e", {
    lastError: { code: "VMM_EXITED", message: "known" },
    imagePull: { status: "failed", phase: "done", layersDone: 0, layersTotal: 0, bytesDone: 0, bytesTotal: 0, error: { code: "IMAGE_PULL_FAILED", message: "known" }, startedAt: "t", finishedAt: "t" },
  });
  await store.close();
  // What a newer daemon (or a hand edit) could have written.
  const db = new Database(path);
  db.prepare("UPDATE machines SET last_error_code = 'FROM_THE_FUTURE', image_pull = json_set(image_pull, '$.error.code', 'ALSO_NEW') WHERE id = 'vm_e'").run();
  db.close();
  const again = await openStore({ path });
  const rec = await again.machines.get("vm_e");
  assert.deepEqual(rec?.lastError, { code: "INTERNAL", message: "known" });
  assert.deepEqual(rec?.imagePull?.error, { code: "INTERNAL", message: "known" });
  assert.equal(rec?.imagePull?.status, "failed");
  await again.close();
});

test("0007: machines from before it get no services and each its own access token; new ones keep theirs", async () => {
  const { store, path } = await tempStore();
  await store.close();
  const db = new Kysely<unknown>({ dialect: new SqliteDialect({ database: new Database(path) }) });
  assert.equal((await new Migrator({ db, provider: migrationProvider }).migrateTo("0006-machine-vmm")).error, undefined);
  await db.destroy();
  const raw = new Database(path);
  for (const id of ["vm_a", "vm_b"]) {
    raw.prepare(`INSERT INTO machines (id, name, status, vcpu_count, mem_size_mib, run_dir, env, metadata, created_at, updated_at, status_changed_at)
                 VALUES (?, ?, 'stopped', 1, 256, '/run/x', '{}', '{}', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')`).run(id, id);
  }
  raw.close();
  const again = await openStore({ path });
  assert.equal(again.migrations[0], "0007-proxy");
  assert.deepEqual((await again.machines.get("vm_a"))?.services, []);
  const [a, b] = [await again.proxyTargets.token("vm_a"), await again.proxyTargets.token("vm_b")];
  assert.match(a ?? "", /^[0-9a-f]{64}$/);
  assert.notEqual(a, b);
  const rec = await again.machines.insert({ ...newMachine("vm_new"), services: [{ port: 8080, visibility: "private" }], accessToken: "tok-1" });
  assert.deepEqual(rec.services, [{ port: 8080, visibility: "private" }]);
  assert.ok(!("accessToken" in rec), "the record never carries the token");
  assert.equal(await again.proxyTargets.token("vm_new"), "tok-1");
  assert.equal(await again.proxyTargets.setToken("vm_new", "tok-2"), true);
  assert.equal(await again.proxyTargets.setToken("vm_gone", "x"), false);
  assert.equal(await again.proxyTargets.token("vm_gone"), undefined);
  assert.deepEqual((await again.proxyTargets.byName("VM_NEW")).map((t) => [t.id, t.token, t.ip]), [["vm_new", "tok-2", null]]);
  await again.close();
});
