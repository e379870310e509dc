/**
 * Private registries through the API (a real htpasswd-protected registry on loopback): without or
 * with wrong `registry_auth` the machine ends `failed` with IMAGE_UNAUTHORIZED and nothing is left
 * (no run dir, no cached image, nothing held); with the right credentials the image is pulled; and
 * the password is nowhere: not in the database file, not in any file under the data dir (image
 * cache included), not in the daemon's log lines (debug level), not in any API response.
 * No VM is booted here.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { buildBusyboxLayout, push, workDir } from "../images/fixtures.js";
import { startRegistry, type TestRegistry } from "../images/registry.js";
import { body, filesContaining, machineWhen, startImageDaemon, type ImageDaemon, type ImageJson, type MachineJson } from "./images-helpers.js";

const USER = "hf-api-user";
const PASSWORD = "Pw-api-3b9d1f70-never-stored";
const SECRETS = [PASSWORD, Buffer.from(`${USER}:${PASSWORD}`).toString("base64")];
let registry: TestRegistry;
let fixtures: string;
let d: ImageDaemon;
let ref = "";
const responses: string[] = [];

before(async () => {
  registry = await startRegistry({ auth: { username: USER, password: PASSWORD } });
  fixtures = await workDir();
  const layout = await buildBusyboxLayout(fixtures);
  const authFile = join(fixtures, "push-auth.json");
  await writeFile(authFile, JSON.stringify({ auths: { [registry.host]: { auth: SECRETS[1] } } }), { mode: 0o600 });
  ref = `${registry.host}/private/busybox:1`;
  await push(layout, "bb", ref, { authFile });
  await push(layout, "bb", `${registry.host}/private/busybox:2`, { authFile });
  d = await startImageDaemon({ HYPERFLEET_INSECURE_REGISTRIES: registry.host });
});

after(async () => {
  await d?.close();
  await registry?.stop();
  if (fixtures) await rm(fixtures, { recursive: true, force: true });
});

/** Requests whose answers are kept, to scan them for the password. */
async function call(method: string, url: string, b?: unknown) {
  const r = await d.req(method, url, b);
  responses.push(r.body);
  return r;
}

async function createFailing(name: string, extra: Record<string, unknown>): Promise<MachineJson> {
  const c = await call("POST", "/machines", { name, vcpu_count: 1, mem_size_mib: 128, image: ref, ...extra });
  assert.equal(c.statusCode, 201, c.body);
  const id = body<MachineJson>(c).id;
  const m = await machineWhen(d, id, (x) => x.status === "failed", 60_000, `${name} to fail`);
  responses.push(JSON.stringify(m));
  return m;
}

test("missing or wrong credentials: the machine fails with IMAGE_UNAUTHORIZED and leaves nothing behind", { timeout: 120_000 }, async () => {
  for (const [name, extra] of [["no-auth", {}], ["wrong-auth", { registry_auth: { username: USER, password: "wrong-password" } }]] as const) {
    const m = await createFailing(name, extra);
    assert.equal(m.last_error?.code, "IMAGE_UNAUTHORIZED", JSON.stringify(m));
    assert.equal(m.image_pull?.status, "failed");
    assert.equal(m.image_pull?.error?.code, "IMAGE_UNAUTHORIZED");
    assert.equal(m.image_digest, null);
    assert.equal(m.rootfs_path, null);
    assert.ok(!existsSync(join(d.dataDir, "machines", m.id)), "no run dir");
    // /wait for running says at once that it failed, with the image error.
    const w = await call("GET", `/machines/${m.id}/wait?status=running&timeout=5`);
    assert.equal(w.statusCode, 409);
    assert.match(w.body, /MACHINE_FAILED.*IMAGE_UNAUTHORIZED/);
  }
  assert.deepEqual(body(await call("GET", "/images")), [], "nothing cached, nothing held");

  // Pulling ahead of time answers with the image error's own status: 400, never our API's 401.
  const p = await call("POST", "/images/pull", { image: `${registry.host}/private/busybox:2`, registry_auth: { username: USER, password: "nope" } });
  assert.equal(p.statusCode, 400, p.body);
  assert.equal(body<{ error: { code: string } }>(p).error.code, "IMAGE_UNAUTHORIZED");
});

test("a pull that fails during a start is logged once (as the failed boot), not also by the pull", { timeout: 120_000 }, async () => {
  const m = await createFailing("start-no-auth", { start: true });
  assert.equal(m.last_error?.code, "IMAGE_UNAUTHORIZED", JSON.stringify(m));
  const warnings = d
    .logs()
    .split("\n")
    .filter((l) => l.includes(`"machine_id":"${m.id}"`) && /"level":(40|50|60)/.test(l));
  assert.equal(warnings.length, 1, warnings.join("\n"));
  assert.match(warnings[0]!, /IMAGE_UNAUTHORIZED/);
});

test("the right credentials pull; the password is in no file, log line or response", { timeout: 120_000 }, async () => {
  const c = await call("POST", "/machines", { name: "with-auth", vcpu_count: 1, mem_size_mib: 128, image: ref, registry_auth: { username: USER, password: PASSWORD } });
  assert.equal(c.statusCode, 201, c.body);
  const id = body<MachineJson>(c).id;
  const m = await machineWhen(d, id, (x) => x.image_pull?.status !== "pulling", 60_000, "the pull");
  assert.equal(m.image_pull?.status, "done", JSON.stringify(m));
  assert.equal(m.status, "created");
  assert.match(m.image_digest ?? "", /^sha256:/);
  const p = await call("POST", "/images/pull", { image: `${registry.host}/private/busybox:2`, registry_auth: { token: "not-a-real-token" } });
  // The registry speaks basic auth only: a token does not get in.
  assert.equal(p.statusCode, 400, p.body);
  const ok = await call("POST", "/images/pull", { image: `${registry.host}/private/busybox:2`, registry_auth: { username: USER, password: PASSWORD } });
  assert.equal(ok.statusCode, 200, ok.body);
  assert.equal(body<ImageJson>(ok).digest, m.image_digest, "same content, other tag: the same cached image");
  await call("GET", "/machines");
  await call("GET", `/machines/${id}`);
  await call("GET", "/images");

  // Let the cache index's delayed write happen, then look everywhere.
  await new Promise((r) => setTimeout(r, 1500));
  assert.deepEqual(await filesContaining(d.dataDir, SECRETS), [], "no file under the data dir (db, wal, image cache, run dirs)");
  assert.ok(existsSync(join(d.dataDir, "hyperfleet.db")));
  for (const s of SECRETS) {
    assert.ok(!d.logs().includes(s), "not in the daemon log");
    assert.ok(!responses.some((r) => r.includes(s)), "not in any response");
  }
  assert.ok(d.logs().includes('"msg":"image ready"'), "the log was captured (debug level)");
});
