/**
 * Machine secrets end to end (docs/agents.md, "Secrets"), with a real daemon, real VMs, real
 * SQLite and the busybox image from a loopback registry:
 * - the main process has them in its environment (over env of the same name), read from the
 *   guest's /proc/<pid>/environ by an exec that prints only hashes, so no value travels back;
 * - /run/secrets is its own tmpfs, 0500 and each file 0400, owned by the main process's user;
 *   an exec (which gets no secrets in its own environment) can read the files;
 * - a rotation rewrites the files live and removes a dropped name;
 * - no value is in any API answer, in any host process's argv or environ, in the daemon's log,
 *   or in any byte under the data dir (store, WAL, run dirs with the VM's disk and console),
 *   where the machine's plain env is found (the scan works);
 * - a machine without an image gets its files as root;
 * - a daemon restarted with another key fails the start with SECRETS_UNREADABLE, and a
 *   rotation mends it.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { body, exec, filesContaining, machineWhen, startBusyboxDaemon, startImageDaemon, waitStatus, type BusyboxDaemon, type ImageDaemon } from "./images-helpers.js";
import { vmSkipReason } from "./helpers.js";

const skip = vmSkipReason();
const BB = "/bin/busybox";

let fx: BusyboxDaemon;
/** Every value given as a secret in this file, and what the API may show instead. */
const values: string[] = [];
const answers: string[] = [];

function secret(tag: string): string {
  const v = `${tag}-${randomBytes(16).toString("hex")}`;
  values.push(v);
  return v;
}

const sha = (s: string) => createHash("sha256").update(s).digest("hex");

/** An API answer, kept for the final scan. */
async function call(d: ImageDaemon, method: string, url: string, payload?: unknown) {
  const r = await d.req(method, url, payload);
  answers.push(r.body);
  return r;
}

/** Host processes whose command line or environment holds one of `needles` (every readable /proc entry). */
function processesHolding(needles: readonly string[]): string[] {
  const hits: string[] = [];
  for (const pid of readdirSync("/proc").filter((e) => /^\d+$/.test(e))) {
    for (const f of ["cmdline", "environ"]) {
      let data: Buffer;
      try {
        data = readFileSync(`/proc/${pid}/${f}`);
      } catch {
        continue; // gone meanwhile
      }
      if (needles.some((n) => data.includes(n))) hits.push(`${pid}/${f}`);
    }
  }
  return hits;
}

/** One line per guest command, each `sh -c` run as the exec's default user (the image's, 1000). */
async function sh(d: ImageDaemon, id: string, script: string): Promise<string> {
  const r = await exec(d, id, [BB, "sh", "-c", script]);
  assert.equal(r.exit_code, 0, `${script}: ${r.stderr}`);
  return r.stdout.trim();
}

before(async () => {
  if (skip) return;
  fx = await startBusyboxDaemon();
});

after(async () => {
  if (skip) return;
  await fx.close();
});

test("secrets reach the main process and /run/secrets, rotate live, and appear nowhere else", { skip: skip ?? false, timeout: 300_000 }, async (ctx) => {
  const { d, busybox } = fx;
  const token = secret("tok");
  const password = secret("pw");
  const rotated = secret("rot");
  const plainEnv = `plain-${randomBytes(12).toString("hex")}`;
  const created = await call(d, "POST", "/machines", {
    name: "with-secrets",
    vcpu_count: 1,
    mem_size_mib: 128,
    image: busybox,
    entrypoint: [BB, "sh", "-c"],
    cmd: ["while true; do /bin/busybox sleep 1; done"],
    env: { API_TOKEN: "from-env", PLAIN: plainEnv },
    secrets: { DB_PASSWORD: password, API_TOKEN: token },
    start: true,
  });
  assert.equal(created.statusCode, 201, created.body);
  const id = body<{ id: string; secret_names: string[] }>(created).id;
  assert.deepEqual(body<{ secret_names: string[] }>(created).secret_names, ["API_TOKEN", "DB_PASSWORD"]);
  await waitStatus(d, id, "running", 240_000);
  const m = await machineWhen(d, id, (x) => x.main_process?.status === "running" && x.main_process.pid !== null, 30_000, "main process running");
  const pid = m.main_process!.pid!;

  // The main process's environment, as hashes of its lines: the secret wins over env of its name.
  const environ = await sh(d, id, `${BB} tr '\\0' '\\n' < /proc/${pid}/environ | ${BB} grep -E '^(API_TOKEN|DB_PASSWORD|PLAIN)=' | ${BB} sort | while read -r l; do echo "$l" | ${BB} sha256sum; done`);
  assert.deepEqual(
    environ.split("\n").map((l) => l.split(" ")[0]),
    [`API_TOKEN=${token}`, `DB_PASSWORD=${password}`, `PLAIN=${plainEnv}`].map((l) => sha(`${l}\n`)),
    "the main process's API_TOKEN, DB_PASSWORD and PLAIN",
  );

  // The files: their own tmpfs, owned by the main process's user (the image's 1000:1000).
  const mounts = await sh(d, id, `${BB} grep ' /run/secrets ' /proc/mounts`);
  assert.match(mounts, /^hf-secrets \/run\/secrets tmpfs \S*nosuid,nodev,noexec/, mounts);
  assert.equal(await sh(d, id, `${BB} stat -c '%a %u %g' /run/secrets /run/secrets/API_TOKEN /run/secrets/DB_PASSWORD`), "500 1000 1000\n400 1000 1000\n400 1000 1000");
  assert.equal(await sh(d, id, `${BB} sha256sum /run/secrets/API_TOKEN | ${BB} cut -d' ' -f1`), sha(token));
  // An exec has the machine's env, never its secrets, and reads the files like the main process.
  assert.equal(await sh(d, id, `echo "$API_TOKEN/\${DB_PASSWORD:-unset}"`), "from-env/unset");
  assert.equal(await sh(d, id, `${BB} cat /run/secrets/DB_PASSWORD | ${BB} sha256sum | ${BB} cut -d' ' -f1`), sha(password));

  // Rotation: the files change at once; a dropped name goes.
  const t0 = performance.now();
  const put = await call(d, "PUT", `/machines/${id}/secrets`, { secrets: { API_TOKEN: rotated } });
  ctx.diagnostic(`rotation of a running machine (store + live files): ${Math.round(performance.now() - t0)} ms`);
  assert.equal(put.statusCode, 200, put.body);
  assert.deepEqual(body<{ secret_names: string[] }>(put).secret_names, ["API_TOKEN"]);
  assert.equal(await sh(d, id, `${BB} ls -A /run/secrets`), "API_TOKEN");
  assert.equal(await sh(d, id, `${BB} sha256sum /run/secrets/API_TOKEN | ${BB} cut -d' ' -f1`), sha(rotated));
  assert.equal(await sh(d, id, `${BB} stat -c '%a %u %g' /run/secrets/API_TOKEN`), "400 1000 1000");

  // Every read the API has for the machine.
  for (const url of [`/machines/${id}`, "/machines", `/machines/${id}/logs`, `/machines/${id}/processes`, "/openapi.json"]) {
    const r = await call(d, "GET", url);
    assert.equal(r.statusCode, 200, `${url}: ${r.body}`);
  }
  assert.deepEqual(processesHolding(values), [], "a host process has a secret in its argv or environment");

  // Stopped: the guest synced its disk, so the overlay holds whatever it wrote.
  assert.equal((await call(d, "POST", `/machines/${id}/stop`)).statusCode, 202);
  await waitStatus(d, id, "stopped", 60_000);
  const leaks = answers.filter((a) => values.some((v) => a.includes(v)));
  assert.deepEqual(leaks, [], "an API answer holds a secret");
  assert.ok(!values.some((v) => d.logs().includes(v)), "the daemon's log holds a secret");
  assert.ok(d.logs().includes(`"machine_id":"${id}"`), "the log scan sees the machine's lines");
  assert.deepEqual(await filesContaining(d.dataDir, values), [], "a file under the data dir holds a secret");
  assert.ok((await filesContaining(d.dataDir, [plainEnv])).some((f) => f.endsWith("hyperfleet.db") || f.endsWith("-wal")), "the scan finds the machine's plain env in the store");
});

test("a machine without an image gets its files as root", { skip: skip ?? false, timeout: 300_000 }, async () => {
  const { d } = fx;
  const value = secret("root");
  const r = await call(d, "POST", "/machines", { name: "plain-secrets", vcpu_count: 1, mem_size_mib: 128, secrets: { ONLY: value }, start: true });
  assert.equal(r.statusCode, 201, r.body);
  const id = body<{ id: string }>(r).id;
  await waitStatus(d, id, "running", 120_000);
  assert.equal(await sh(d, id, `${BB} stat -c '%a %u %g' /run/secrets /run/secrets/ONLY`), "500 0 0\n400 0 0");
  assert.equal(await sh(d, id, `${BB} sha256sum /run/secrets/ONLY | ${BB} cut -d' ' -f1`), sha(value));
  assert.equal((await call(d, "DELETE", `/machines/${id}`)).statusCode, 204);
});

test("another key: the start fails with SECRETS_UNREADABLE, a rotation mends it", { skip: skip ?? false, timeout: 300_000 }, async () => {
  const keyA = randomBytes(32).toString("hex");
  const keyB = randomBytes(32).toString("base64");
  const value = secret("keyed");
  let d = await startImageDaemon({ HYPERFLEET_SECRET_KEY: keyA });
  const dataDir = d.dataDir;
  try {
    const r = await call(d, "POST", "/machines", { name: "keyed", vcpu_count: 1, mem_size_mib: 128, secrets: { K: value } });
    assert.equal(r.statusCode, 201, r.body);
    const id = body<{ id: string }>(r).id;
    await d.daemon.close();
    d = await startImageDaemon({ HYPERFLEET_SECRET_KEY: keyB }, { dataDir });
    assert.equal((await call(d, "POST", `/machines/${id}/start`)).statusCode, 202);
    const failed = await waitStatus(d, id, "failed", 60_000);
    assert.equal(failed.last_error?.code, "SECRETS_UNREADABLE", JSON.stringify(failed.last_error));
    assert.match(failed.last_error!.message, /secret K .*PUT \/machines\/.*\/secrets/);
    const put = await call(d, "PUT", `/machines/${id}/secrets`, { secrets: { K: secret("mended") } });
    assert.equal(put.statusCode, 200, put.body);
    assert.equal((await call(d, "POST", `/machines/${id}/start`)).statusCode, 202);
    await waitStatus(d, id, "running", 120_000);
    assert.ok(!answers.some((a) => values.some((v) => a.includes(v))), "an API answer holds a secret");
  } finally {
    await d.close({ keepDataDir: true });
    await rm(dataDir, { recursive: true, force: true });
  }
});
