/**
 * The image cache through the API, no VM needed: POST /images/pull, GET /images, DELETE
 * /images/:ref (URL-encoded; 404 unknown, 409 in use); the size limit (a second daemon on the same
 * data dir with room for one image: unused images are evicted least recently used first, an image
 * a machine uses never is, and deleting that machine trims the cache); and the 400s of image
 * fields at create time; pulls cut short by a delete, a shutdown, or a daemon that died.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { rm } from "node:fs/promises";
import { createServer, type AddressInfo, type Socket } from "node:net";
import { join } from "node:path";
import { openStore } from "../../src/store/store.js";
import { addLabelVariants, buildBusyboxLayout, push, workDir } from "../images/fixtures.js";
import { startRegistry, type TestRegistry } from "../images/registry.js";
import { until } from "./helpers.js";
import { body, machineWhen, startImageDaemon, type ImageDaemon, type ImageJson, type MachineJson } from "./images-helpers.js";

let registry: TestRegistry;
let fixtures: string;
let d: ImageDaemon | undefined;
const ev: string[] = [];

before(async () => {
  registry = await startRegistry();
  fixtures = await workDir();
  const layout = await buildBusyboxLayout(fixtures);
  for (const tag of await addLabelVariants(layout, 3)) {
    ev.push(`${registry.host}/test/ev:${tag}`);
    await push(layout, tag, ev.at(-1)!);
  }
});

after(async () => {
  await d?.close();
  await registry?.stop();
  if (fixtures) await rm(fixtures, { recursive: true, force: true });
});

type ErrorJson = { error: { code: string; field?: string; message: string } };

function expectError(r: { statusCode: number; body: string }, status: number, code: string, field?: string): void {
  assert.equal(r.statusCode, status, r.body);
  const e = JSON.parse(r.body) as ErrorJson;
  assert.equal(e.error.code, code, r.body);
  if (field !== undefined) assert.equal(e.error.field, field, r.body);
}

const images = async (t: ImageDaemon) => body<ImageJson[]>(await t.req("GET", "/images"));
const named = (list: ImageJson[]) => list.map((i) => i.refs.join(",")).sort();
const normalized = (ref: string) => ref; // the registry has a port, so the reference is already in normal form

test("image fields are checked at create time: 400 with the field, nothing created", async () => {
  const t = (d = await startImageDaemon({ HYPERFLEET_INSECURE_REGISTRIES: registry.host }));
  const base = { name: "v", vcpu_count: 1, mem_size_mib: 128 };
  const cases: Array<[Record<string, unknown>, string]> = [
    [{ image: "UPPER/Case" }, "image"],
    [{ image: "alpine:bad tag" }, "image"],
    [{ image: "alpine@sha256:123" }, "image"],
    [{ image: "" }, "image"],
    [{ image_size_mib: 256 }, "image_size_mib"],
    [{ cmd: ["x"] }, "cmd"],
    [{ entrypoint: [] }, "entrypoint"],
    [{ workdir: "/w" }, "workdir"],
    [{ user: "1000" }, "user"],
    [{ registry_auth: { username: "u", password: "p" } }, "registry_auth"],
    [{ image: "alpine", registry_auth: { username: "u" } }, "registry_auth.password"],
    [{ image: "alpine", registry_auth: { password: "p" } }, "registry_auth.username"],
    [{ image: "alpine", registry_auth: { token: "t", username: "u" } }, "registry_auth.token"],
    [{ image: "alpine", registry_auth: { user: "u" } }, "registry_auth.user"],
    [{ image: "alpine", cmd: "echo hi" }, "cmd"],
    [{ image: "alpine", cmd: [1] }, "cmd[0]"],
    [{ image: "alpine", workdir: "relative" }, "workdir"],
    [{ image: "alpine", user: "bad user" }, "user"],
    [{ image: "alpine", image_size_mib: 1 }, "image_size_mib"],
  ];
  for (const [extra, field] of cases) expectError(await t.req("POST", "/machines", { ...base, ...extra }), 400, "INVALID_ARGUMENT", field);
  assert.deepEqual(body(await t.req("GET", "/machines")), []);
  expectError(await t.req("POST", "/images/pull", { image: "Not/Valid" }), 400, "INVALID_ARGUMENT", "image");
  expectError(await t.req("POST", "/images/pull", {}), 400, "INVALID_ARGUMENT", "image");
  expectError(await t.req("DELETE", `/images/${encodeURIComponent("Not Valid")}`), 400, "INVALID_ARGUMENT", "image");
  expectError(await t.req("GET", "/machines/vm_01J9Z6Y8W2V4T0S5R3Q1P7N9M8/logs?tail=-1"), 400, "INVALID_ARGUMENT", "tail");
  expectError(await t.req("GET", "/machines/vm_01J9Z6Y8W2V4T0S5R3Q1P7N9M8/logs"), 404, "MACHINE_NOT_FOUND");
  const unreachable = await t.req("POST", "/images/pull", { image: "127.0.0.1:1/nothing/here:1" });
  assert.ok(unreachable.statusCode >= 400 && unreachable.statusCode !== 500, unreachable.body);
  await t.close();
  d = undefined;
});

test("pull ahead of time, list, delete (URL-encoded reference or digest), 404 when not cached", { timeout: 120_000 }, async () => {
  const t = (d = await startImageDaemon({ HYPERFLEET_INSECURE_REGISTRIES: registry.host }));
  const p = await t.req("POST", "/images/pull", { image: ev[0] });
  assert.equal(p.statusCode, 200, p.body);
  const img = body<ImageJson>(p);
  assert.deepEqual(img.refs, [normalized(ev[0]!)]);
  assert.match(img.digest, /^sha256:[0-9a-f]{64}$/);
  assert.equal(img.in_use, false);
  assert.deepEqual(img.config.env, { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", GREETING: "hello world" });
  assert.equal(img.config.working_dir, "/home/app");
  assert.deepEqual(named(await images(t)), [ev[0]]);

  assert.equal((await t.req("DELETE", `/images/${encodeURIComponent(ev[0]!)}`)).statusCode, 204);
  assert.deepEqual(await images(t), []);
  expectError(await t.req("DELETE", `/images/${encodeURIComponent(ev[0]!)}`), 404, "IMAGE_NOT_CACHED");

  // By digest too.
  const again = body<ImageJson>(await t.req("POST", "/images/pull", { image: ev[0] }));
  assert.equal((await t.req("DELETE", `/images/${again.digest}`)).statusCode, 204);
  expectError(await t.req("DELETE", `/images/${again.digest}`), 404, "IMAGE_NOT_CACHED");
  await t.close();
  d = undefined;
});

test("the size limit: unused images go least recently used first; an image in use never does", { timeout: 180_000 }, async () => {
  // First daemon: measure one image, keep it cached.
  const first = (d = await startImageDaemon({ HYPERFLEET_INSECURE_REGISTRIES: registry.host }));
  const one = body<ImageJson>(await first.req("POST", "/images/pull", { image: ev[0] }));
  await first.close({ keepDataDir: true });
  // Second daemon, same data dir: room for one image (the variants share their layers, so a
  // second one costs its own disk, megabytes, far more than this margin).
  const limit = one.size_bytes + 64 * 1024;
  const t = (d = await startImageDaemon({ HYPERFLEET_INSECURE_REGISTRIES: registry.host, HYPERFLEET_OCI_MAX_CACHE_SIZE: String(limit) }, { dataDir: first.dataDir }));
  assert.deepEqual(named(await images(t)), [ev[0]], "within the limit: kept across the restart");

  const c = await t.req("POST", "/machines", { name: "holder", vcpu_count: 1, mem_size_mib: 128, image: ev[1] });
  assert.equal(c.statusCode, 201, c.body);
  const holder = await machineWhen(t, body<MachineJson>(c).id, (m) => m.image_pull?.status === "done", 60_000, "the holder's pull");
  let list = await images(t);
  assert.deepEqual(named(list), [ev[1]], "the older, unused image was evicted to make room");
  assert.equal(list[0]!.in_use, true);
  assert.equal(list[0]!.digest, holder.image_digest);

  const p = await t.req("POST", "/images/pull", { image: ev[2] });
  assert.equal(p.statusCode, 200, p.body);
  list = await images(t);
  assert.deepEqual(named(list), [ev[1], ev[2]].sort(), "over the limit, but the image in use stays (and the new one is kept)");
  expectError(await t.req("DELETE", `/images/${encodeURIComponent(ev[1]!)}`), 409, "IMAGE_IN_USE");

  assert.equal((await t.req("DELETE", `/machines/${holder.id}`)).statusCode, 204);
  list = await images(t);
  assert.deepEqual(named(list), [ev[2]], "once its machine is gone, the image is evicted at once");
  assert.equal(list[0]!.in_use, false);
  await t.close();
  d = undefined;
});

test("pulls cut short: a delete during the pull, a daemon stopping during one, a daemon that died in one", { timeout: 120_000 }, async () => {
  // A "registry" that accepts connections and never answers: pulls from it hang until cancelled.
  const sockets: Socket[] = [];
  const silent = createServer((s) => void sockets.push(s));
  await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
  const host = `127.0.0.1:${(silent.address() as AddressInfo).port}`;
  try {
    const t = (d = await startImageDaemon({ HYPERFLEET_INSECURE_REGISTRIES: host }));
    const create = async (name: string) => {
      const r = await t.req("POST", "/machines", { name, vcpu_count: 1, mem_size_mib: 128, image: `${host}/slow/app:1`, start: name === "deleted" });
      assert.equal(r.statusCode, 201, r.body);
      return body<MachineJson>(r).id;
    };
    const deleted = await create("deleted");
    await until(async () => sockets.length > 0, 10_000, "the pull to reach the registry");
    const t0 = Date.now();
    assert.equal((await t.req("DELETE", `/machines/${deleted}`)).statusCode, 204);
    assert.ok(Date.now() - t0 < 10_000, "the delete does not wait for the pull");
    assert.ok(!existsSync(join(t.dataDir, "machines", deleted)));

    const cut = await create("cut-by-shutdown");
    await t.daemon.close();
    const store = await openStore({ path: join(t.dataDir, "hyperfleet.db") });
    const rec = await store.machines.get(cut);
    assert.equal(rec?.status, "failed");
    assert.equal(rec?.lastError?.code, "IMAGE_PULL_ABORTED");
    assert.equal(rec?.imagePull?.status, "failed");
    // As if the daemon had died mid-pull: the record still says `pulling`.
    const died = await store.machines.insert({ id: "vm_01J9Z6Y8W2V4T0S5R3Q1P7N9M8", name: "died", vcpuCount: 1, memSizeMib: 128, imageRef: `${host}/slow/app:1`, kernelImagePath: null, initrdPath: null, kernelArgs: null, rootfsPath: null, runDir: join(t.dataDir, "machines", "x"), network: null, env: {}, metadata: {}, vmm: "qemu" });
    await store.machines.update(died.id, { imagePull: { ...rec!.imagePull!, status: "pulling", error: null, finishedAt: null } });
    // ... and one whose boot was waiting for its pull (`starting`, no root disk yet).
    const booting = await store.machines.insert({ ...died, id: "vm_01J9Z6Y8W2V4T0S5R3Q1P7N9M9", name: "booting" });
    await store.machines.transition(booting.id, ["created"], "starting", { imagePull: { ...rec!.imagePull!, status: "pulling", error: null, finishedAt: null } });
    await store.close();

    const t2 = (d = await startImageDaemon({ HYPERFLEET_INSECURE_REGISTRIES: host }, { dataDir: t.dataDir }));
    assert.deepEqual(t2.daemon.reconciled.pullsInterrupted.sort(), [died.id, booting.id]);
    assert.deepEqual(t2.daemon.reconciled.died, [booting.id]);
    const m = body<MachineJson>(await t2.req("GET", `/machines/${died.id}`));
    assert.equal(m.status, "failed");
    assert.equal(m.last_error?.code, "IMAGE_PULL_ABORTED");
    assert.equal(m.image_pull?.status, "failed");
    const b = body<MachineJson>(await t2.req("GET", `/machines/${booting.id}`));
    assert.equal(b.status, "failed", "not left in `starting` forever");
    assert.equal(b.image_pull?.status, "failed");
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise((r) => silent.close(r));
  }
});
