/**
 * Secrets across restores (docs/agents.md, "Secrets"), real daemon and VMs without an image:
 * a rotation while suspended reaches /run/secrets when the machine is resumed; a clone created
 * with its own secrets gets its files rewritten at its first boot, while a clone without any keeps
 * what its source's memory held (the documented carry-over); a paused machine refuses a rotation.
 * And a daemon run as its own process with HYPERFLEET_SECRET_KEY: the key is in no other process's
 * environment or command line (its VMM gets PATH and LANG), no secret value in any, nor in its
 * log output.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { endDaemons, json, spawnDaemon, startTestDaemon, vmSkipReason, type ChildDaemon, type TestDaemon } from "./helpers.js";

const skip = vmSkipReason();
const BB = "/bin/busybox";
let t: TestDaemon;

before(async () => {
  if (!skip) t = await startTestDaemon();
});
after(async () => {
  await t?.close();
});

const sha = (s: string) => createHash("sha256").update(s).digest("hex");
const value = (tag: string) => `${tag}-${randomBytes(12).toString("hex")}`;

async function sh(id: string, script: string): Promise<string> {
  const r = await t.req("POST", `/machines/${id}/exec`, { command: [BB, "sh", "-c", script] });
  assert.equal(r.statusCode, 200, r.body);
  const b = json<{ exit_code: number; stdout: string; stderr: string }>(r);
  assert.equal(b.exit_code, 0, `${script}: ${b.stderr}`);
  return b.stdout.trim();
}

/** `NAME sha256` per file of /run/secrets, sorted. */
const files = (id: string) => sh(id, `cd /run/secrets && for f in $(${BB} ls -A); do echo "$f $(${BB} sha256sum $f | ${BB} cut -d' ' -f1)"; done`);

async function running(id: string): Promise<void> {
  const r = await t.req("GET", `/machines/${id}/wait?status=running&timeout=30`);
  assert.equal(r.statusCode, 200, r.body);
}

test("suspend, rotate, resume; clones with and without their own; paused refuses", { skip: skip ?? false, timeout: 300_000 }, async () => {
  const [a1, b1, a2, c1] = [value("a1"), value("b1"), value("a2"), value("c1")];
  const created = await t.req("POST", "/machines", { name: "sec-src", vcpu_count: 1, mem_size_mib: 128, secrets: { A: a1, B: b1 }, start: true });
  assert.equal(created.statusCode, 201, created.body);
  const src = json<{ id: string }>(created).id;
  await running(src);
  assert.equal(await files(src), `A ${sha(a1)}\nB ${sha(b1)}`);

  const paused = await t.req("POST", `/machines/${src}/pause`);
  assert.equal(paused.statusCode, 200, paused.body);
  const refused = await t.req("PUT", `/machines/${src}/secrets`, { secrets: { A: a2 } });
  assert.equal(refused.statusCode, 409, refused.body);
  assert.equal(json<{ error: { code: string } }>(refused).error.code, "MACHINE_PAUSED");
  assert.equal((await t.req("POST", `/machines/${src}/resume`)).statusCode, 200);

  assert.equal((await t.req("POST", `/machines/${src}/suspend`)).statusCode, 200);
  const put = await t.req("PUT", `/machines/${src}/secrets`, { secrets: { A: a2 } });
  assert.equal(put.statusCode, 200, put.body);
  const resumed = await t.req("POST", `/machines/${src}/resume`);
  assert.equal(resumed.statusCode, 200, resumed.body);
  assert.equal(await files(src), `A ${sha(a2)}`, "the restored guest's files are the rotated set");

  const snap = await t.req("POST", `/machines/${src}/snapshots`);
  assert.equal(snap.statusCode, 201, snap.body);
  const snapId = json<{ id: string }>(snap).id;
  const own = await t.req("POST", "/machines", { name: "sec-clone-own", snapshot: snapId, secrets: { C: c1 }, start: true });
  assert.equal(own.statusCode, 201, own.body);
  const bare = await t.req("POST", "/machines", { name: "sec-clone-bare", snapshot: snapId, start: true });
  assert.equal(bare.statusCode, 201, bare.body);
  const [ownId, bareId] = [json<{ id: string }>(own).id, json<{ id: string }>(bare).id];
  await running(ownId);
  await running(bareId);
  assert.equal(await files(ownId), `C ${sha(c1)}`, "a clone with its own secrets has only those");
  assert.deepEqual(json<{ secret_names: string[] }>(await t.req("GET", `/machines/${bareId}`)).secret_names, []);
  assert.equal(await files(bareId), `A ${sha(a2)}`, "a clone without secrets keeps the files its source's memory held");
  for (const id of [ownId, bareId, src]) assert.equal((await t.req("DELETE", `/machines/${id}`)).statusCode, 204);
  assert.equal((await t.req("DELETE", `/snapshots/${snapId}`)).statusCode, 204);
});

/** `pid/file` of every process (but `except`'s environ) whose environ or cmdline holds a needle. */
function processesHolding(needles: readonly string[], except: number): string[] {
  const hits: string[] = [];
  for (const pid of readdirSync("/proc").filter((e) => /^\d+$/.test(e))) {
    for (const f of ["cmdline", "environ"]) {
      if (Number(pid) === except && f === "environ") continue;
      try {
        const data = readFileSync(`/proc/${pid}/${f}`);
        if (needles.some((n) => data.includes(n))) hits.push(`${pid}/${f}: ${readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ").slice(0, 200)}`);
      } catch {
        // gone meanwhile
      }
    }
  }
  return hits;
}

test("a daemon process with HYPERFLEET_SECRET_KEY: key and values in no other process, values not in its log", { skip: skip ?? false, timeout: 300_000 }, async (ctx) => {
  const dataDir = await mkdtemp(join(tmpdir(), "hf-seckey-"));
  const key = randomBytes(32).toString("hex");
  const v = value("proc");
  const daemons: ChildDaemon[] = [];
  try {
    const c = await spawnDaemon(dataDir, { HYPERFLEET_SECRET_KEY: key });
    daemons.push(c);
    const r = await c.fetch("POST", "/machines", { name: "sec-proc", vcpu_count: 1, mem_size_mib: 128, secrets: { V: v }, start: true });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const id = r.body.id as string;
    const w = await c.fetch("GET", `/machines/${id}/wait?status=running&timeout=30`);
    assert.equal(w.status, 200, JSON.stringify(w.body));
    const vmm = w.body.pid as number;
    assert.ok(readFileSync(`/proc/${c.pid}/environ`).includes(key), "the scan sees the key where it is: the daemon's own environment");
    assert.ok(!readFileSync(`/proc/${vmm}/environ`).includes(key), "the VMM got the key");
    // A child between fork and exec shows its parent's environment (the daemon's, with the key)
    // for an instant; a hit that is still there a moment later is a process that keeps it.
    const seen = processesHolding([key, v], c.pid);
    await new Promise((r) => setTimeout(r, 500));
    const kept = processesHolding([key, v], c.pid).filter((h) => seen.includes(h));
    if (seen.length > 0) ctx.diagnostic(`held for an instant only: ${seen.join("; ")}`);
    assert.deepEqual(kept, [], "another process holds the key or a secret");
    const e = await c.fetch("POST", `/machines/${id}/exec`, { command: [BB, "sha256sum", "/run/secrets/V"] });
    assert.equal((e.body.stdout as string).split(" ")[0], sha(v));
    assert.ok(c.output().includes(`"machine_id":"${id}"`), "the log names the machine");
    assert.ok(!c.output().includes(v) && !c.output().includes(key), "the daemon's log output holds the key or a secret");
    assert.equal((await c.fetch("DELETE", `/machines/${id}`)).status, 204);
  } finally {
    await endDaemons(daemons, dataDir);
  }
});
