/**
 * Lease files of library networks (src/network/lease-files.ts): exclusive creation, across
 * processes too; owner liveness that a reused pid does not fool; the file lock (mutual exclusion,
 * a dead holder's lock broken, a live one waited for). Temp dirs only.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { isHyperfleetError } from "../../src/core/errors.js";
import { createExclusive, currentOwner, ownerAlive, processStart, readJson, withFileLock } from "../../src/network/lease-files.js";
import { deadOwner } from "../lease-fixtures.js";

const LEASES = fileURLToPath(new URL("../../src/network/lease-files.ts", import.meta.url));

function tempDir(t: { after: (fn: () => void) => void }): string {
  const d = mkdtempSync(join(tmpdir(), "hf-lease-"));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}


test("owner liveness: this process yes, an exited one no, a pid with another start time no", async () => {
  const me = await currentOwner();
  assert.equal(await ownerAlive(me), true);
  assert.equal(await ownerAlive(await deadOwner()), false);
  assert.equal(await ownerAlive({ pid: me.pid, start: `${Number(me.start) + 1}` }), false, "pid reused by a later process");
  assert.equal(await ownerAlive(null), false);
  assert.equal(await ownerAlive({ pid: -1, start: "1" }), false);
});

test("of 40 concurrent exclusive creates in this process, exactly one wins and its content is whole", async (t) => {
  const dir = tempDir(t);
  const path = join(dir, "1.json");
  const wins = await Promise.all(Array.from({ length: 40 }, (_, i) => createExclusive(path, { i, pad: "x".repeat(10_000) })));
  assert.equal(wins.filter(Boolean).length, 1);
  const got = await readJson<{ i: number; pad: string }>(path);
  assert.ok(got !== null && got !== "corrupt");
  assert.equal(got.i, wins.indexOf(true));
  assert.deepEqual(readdirSync(dir), ["1.json"], "no temp file is left behind");
});

test("of 6 processes racing for one lease, exactly one wins", async (t) => {
  const dir = tempDir(t);
  const path = join(dir, "slot.json");
  const code = `const { createExclusive } = await import(${JSON.stringify(LEASES)}); ` +
    `await new Promise((r) => setTimeout(r, Number(process.argv[1]) - Date.now())); ` +
    `process.stdout.write(String(await createExclusive(${JSON.stringify(path)}, { pid: process.pid })));`;
  const at = Date.now() + 1500; // all start together, after each has loaded
  const outs = await Promise.all(
    Array.from({ length: 6 }, () =>
      new Promise<string>((resolve, reject) => {
        const c = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code, String(at)], { stdio: ["ignore", "pipe", "inherit"] });
        let out = "";
        c.stdout.on("data", (d: Buffer) => (out += d.toString()));
        c.once("error", reject);
        c.once("exit", (rc) => (rc === 0 ? resolve(out) : reject(new Error(`child exited ${rc}`))));
      }),
    ),
  );
  assert.deepEqual(outs.sort(), ["false", "false", "false", "false", "false", "true"]);
});

test("the file lock excludes concurrent holders", async (t) => {
  const dir = tempDir(t);
  let inside = 0;
  let most = 0;
  let done = 0;
  await Promise.all(
    Array.from({ length: 20 }, () =>
      withFileLock(dir, async () => {
        inside++;
        most = Math.max(most, inside);
        await new Promise((r) => setTimeout(r, 2));
        inside--;
        done++;
      }),
    ),
  );
  assert.equal(most, 1);
  assert.equal(done, 20);
  assert.deepEqual(readdirSync(dir), [], "the lock is removed after the last holder");
});

test("a dead holder's lock is broken; a live holder's is waited for, then NETWORK_SETUP_FAILED", async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, "lock"), JSON.stringify({ ...(await deadOwner()), nonce: "dead" }));
  assert.equal(await withFileLock(dir, async () => "got it", { timeoutMs: 2000 }), "got it");
  assert.deepEqual(readdirSync(dir), []);

  const holder = spawn("sleep", ["30"]);
  t.after(() => holder.kill("SIGKILL"));
  const start = await processStart(holder.pid!);
  writeFileSync(join(dir, "lock"), JSON.stringify({ pid: holder.pid, start, nonce: "live" }));
  const t0 = Date.now();
  await assert.rejects(
    withFileLock(dir, async () => "never", { timeoutMs: 300 }),
    (e: unknown) => isHyperfleetError(e) && e.code === "NETWORK_SETUP_FAILED" && e.message.includes(`pid ${holder.pid}`),
  );
  assert.ok(Date.now() - t0 >= 300);
  const still = await readJson<{ nonce: string }>(join(dir, "lock"));
  assert.ok(still !== null && still !== "corrupt" && still.nonce === "live", "a live holder's lock is never taken");
});
