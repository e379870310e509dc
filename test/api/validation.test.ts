/**
 * The API's answers that need no VM: auth, validation (400 + field), 404, 409, 413, 415,
 * wait timeouts, OpenAPI. Boot paths point at files that do not exist, so nothing here can
 * accidentally boot a VM (a start fails fast and the machine ends `failed`).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { ERROR_CODES } from "../../src/core/errors.js";
import { join } from "node:path";
import { statusHistory } from "../store-history.js";
import { json, startTestDaemon, type TestDaemon } from "./helpers.js";

let t: TestDaemon;
const NO_VM = {
  HYPERFLEET_KERNEL_IMAGE_PATH: "/nonexistent/vmlinux",
  HYPERFLEET_ROOTFS_PATH: "/nonexistent/rootfs.ext4",
  HYPERFLEET_ACCEL: "tcg",
  HYPERFLEET_FILE_MAX_SIZE: "1024",
};
const GHOST = "vm_01J9Z6Y8W2V4T0S5R3Q1P7N9M8";

before(async () => {
  t = await startTestDaemon(NO_VM);
});
after(async () => {
  await t.close();
});

type ErrorJson = { error: { code: string; message: string; field?: string; current_status?: string } };

function expectError(r: { statusCode: number; body: string }, status: number, code: string, field?: string): ErrorJson {
  assert.equal(r.statusCode, status, r.body);
  const b = JSON.parse(r.body) as ErrorJson;
  assert.equal(b.error.code, code, r.body);
  assert.ok(b.error.code in ERROR_CODES);
  assert.ok(b.error.message.length > 0);
  if (field !== undefined) assert.equal(b.error.field, field, r.body);
  return b;
}

async function create(name: string, extra: Record<string, unknown> = {}) {
  const r = await t.req("POST", "/machines", { name, vcpu_count: 1, mem_size_mib: 256, ...extra });
  assert.equal(r.statusCode, 201, r.body);
  return json<{ id: string; status: string; name: string }>(r);
}

test("/health, /openapi.json and /docs need no key; everything else does", async () => {
  const h = await t.daemon.app.inject({ method: "GET", url: "/health" });
  assert.equal(h.statusCode, 200);
  assert.equal(json(h).status, "ok");
  const spec = await t.daemon.app.inject({ method: "GET", url: "/openapi.json" });
  assert.equal(spec.statusCode, 200);
  const doc = json<{ openapi: string; paths: Record<string, unknown>; components: { schemas: Record<string, unknown> } }>(spec);
  assert.equal(doc.openapi, "3.0.3");
  for (const p of ["/machines", "/machines/{id}", "/machines/{id}/exec", "/machines/{id}/files", "/machines/{id}/files/stat", "/machines/{id}/wait", "/health"]) {
    assert.ok(doc.paths[p], `OpenAPI documents ${p}`);
  }
  assert.ok(doc.components.schemas.Machine, "the Machine schema is a component");
  const docs = await t.daemon.app.inject({ method: "GET", url: "/docs" });
  assert.ok(docs.statusCode < 400, `/docs answers ${docs.statusCode}`);

  for (const [method, url] of [["GET", "/machines"], ["POST", "/machines"], ["GET", `/machines/${GHOST}`], ["DELETE", `/machines/${GHOST}`], ["GET", "/nope"]]) {
    const r = await t.daemon.app.inject({ method: method as "GET", url });
    expectError(r, 401, "UNAUTHENTICATED");
    assert.match(String(r.headers["www-authenticate"]), /^Bearer/);
  }
  expectError(await t.req("GET", "/machines", undefined, { authorization: "Bearer wrong-key-0123456789" }), 401, "UNAUTHENTICATED");
  expectError(await t.req("GET", "/machines", undefined, { authorization: "Basic dXNlcjpwYXNz" }), 401, "UNAUTHENTICATED");
});

test("auth comes before validation: a bad body without a key is 401, not 400", async () => {
  const r = await t.daemon.app.inject({ method: "POST", url: "/machines", headers: { "content-type": "application/json" }, payload: "{bad" });
  expectError(r, 401, "UNAUTHENTICATED");
});

test("every response has an x-request-id", async () => {
  const r = await t.req("GET", "/machines");
  assert.match(String(r.headers["x-request-id"]), /^req_[0-9A-Z]{26}$/);
});

test("create: 201 with the full machine", async () => {
  const m = await create("full-machine", { env: { A: "1" }, metadata: { team: "infra" } });
  assert.match(m.id, /^vm_[0-9A-HJKMNP-TV-Z]{26}$/);
  const got = json(await t.req("GET", `/machines/${m.id}`));
  for (const k of ["id", "name", "status", "vcpu_count", "mem_size_mib", "image_ref", "kernel_image_path", "initrd_path", "kernel_args", "rootfs_path", "pid", "network", "exposed_ports", "env", "metadata", "last_error", "created_at", "updated_at", "status_changed_at", "started_at", "stopped_at"]) {
    assert.ok(k in got, `machine has ${k}`);
  }
  assert.equal(got.status, "created");
  assert.equal(got.kernel_image_path, "/nonexistent/vmlinux");
  assert.deepEqual(got.env, { A: "1" });
  assert.deepEqual(got.metadata, { team: "infra" });
});

test("create: 400 names the failing field", async () => {
  const base = { name: "v", vcpu_count: 1, mem_size_mib: 256 };
  const cases: Array<[unknown, string]> = [
    [{ vcpu_count: 1, mem_size_mib: 256 }, "name"],
    [{ ...base, name: "" }, "name"],
    [{ ...base, name: "has space" }, "name"],
    [{ ...base, vcpu_count: "1" }, "vcpu_count"],
    [{ ...base, vcpu_count: 0 }, "vcpu_count"],
    [{ ...base, vcpu_count: 1.5 }, "vcpu_count"],
    [{ ...base, mem_size_mib: 1 }, "mem_size_mib"],
    [{ ...base, env: { "1BAD": "x" } }, "env.1BAD"],
    [{ ...base, env: { OK: 1 } }, "env.OK"],
    [{ ...base, start: "yes" }, "start"],
    [{ ...base, unknown_field: 1 }, "unknown_field"],
    [{ ...base, exposed_ports: [{ guest_port: 70000 }] }, "exposed_ports[0].guest_port"],
    [{ ...base, registry_auth: { username: "u" } }, "registry_auth.password"],
  ];
  for (const [body, field] of cases) expectError(await t.req("POST", "/machines", body), 400, "INVALID_ARGUMENT", field);
  expectError(await t.req("POST", "/machines", [1, 2]), 400, "INVALID_ARGUMENT", "body");
  expectError(await t.req("POST", "/machines", "null", { "content-type": "application/json" }), 400, "INVALID_ARGUMENT");
});

test("create: network and exposed_ports fields are validated by the schema, naming the field", async () => {
  const base = { name: "netbad", vcpu_count: 1, mem_size_mib: 256 };
  const cases: Array<[Record<string, unknown>, string]> = [
    [{ network: "yes" }, "network"],
    [{ network: { internet: "yes" } }, "network.internet"],
    [{ network: { allow_out: ["not-a-cidr"] } }, "network.allow_out[0]"],
    [{ network: { deny_out: "10.0.0.0/8" } }, "network.deny_out"],
    [{ network: { allow_out: Array.from({ length: 65 }, () => "10.0.0.0/8") } }, "network.allow_out"],
    [{ network: { private_network: "Has Space" } }, "network.private_network"],
    [{ network: { enable: true } }, "network.enable"],
    [{ exposed_ports: [{ guest_port: 80, host_ip: "localhost" }] }, "exposed_ports[0].host_ip"],
    [{ exposed_ports: [{ guest_port: 80, protocol: "sctp" }] }, "exposed_ports[0].protocol"],
    [{ exposed_ports: [{ guest_port: 0 }] }, "exposed_ports[0].guest_port"],
    [{ exposed_ports: Array.from({ length: 65 }, (_, i) => ({ guest_port: i + 1 })) }, "exposed_ports"],
  ];
  for (const [extra, field] of cases) expectError(await t.req("POST", "/machines", { ...base, ...extra }), 400, "INVALID_ARGUMENT", field);
  // Not created as a side effect.
  const names = json<Array<{ name: string }>>(await t.req("GET", "/machines")).map((m) => m.name);
  assert.ok(!names.includes("netbad"));
});

test("create: duplicate name is 409 MACHINE_ALREADY_EXISTS", async () => {
  await create("dup");
  expectError(await t.req("POST", "/machines", { name: "dup", vcpu_count: 1, mem_size_mib: 256 }), 409, "MACHINE_ALREADY_EXISTS", "name");
});

test("malformed requests: JSON, media type, size, URL, unknown routes", async () => {
  expectError(await t.req("POST", "/machines", "{bad", { "content-type": "application/json" }), 400, "MALFORMED_REQUEST");
  // An empty JSON body counts as no body: fine where none is needed, INVALID_ARGUMENT where one is.
  expectError(await t.req("POST", "/machines", "", { "content-type": "application/json" }), 400, "INVALID_ARGUMENT", "body");
  expectError(await t.req("POST", `/machines/${GHOST}/start`, "", { "content-type": "application/json" }), 404, "MACHINE_NOT_FOUND");
  expectError(await t.req("POST", "/machines", "<a/>", { "content-type": "application/xml" }), 415, "UNSUPPORTED_MEDIA_TYPE");
  expectError(await t.req("POST", "/machines", "x".repeat(2 * 1024 * 1024), { "content-type": "application/json" }), 413, "BODY_TOO_LARGE");
  expectError(await t.req("GET", "/machines/%E0%A4%A"), 400, "MALFORMED_REQUEST");
  expectError(await t.req("GET", "/nope"), 404, "ROUTE_NOT_FOUND");
  expectError(await t.req("PUT", "/machines"), 404, "ROUTE_NOT_FOUND");
  expectError(await t.req("GET", `/machines/${"x".repeat(500)}`), 400, "MALFORMED_REQUEST");
});

test("404 MACHINE_NOT_FOUND for unknown ids and for malformed ones alike (as Docker and Fly answer)", async () => {
  const routes = [["GET", ""], ["DELETE", ""], ["POST", "/start"], ["POST", "/stop"], ["POST", "/restart"], ["POST", "/pause"], ["GET", "/wait"],
    ["GET", "/files/stat?path=/x"], ["GET", "/files?path=/x"], ["DELETE", "/files?path=/x"], ["GET", "/logs"], ["POST", "/snapshots"]];
  for (const id of [GHOST, "not-an-id", "vm_", "VM_01J9Z6Y8W2V4T0S5R3Q1P7N9M8", "vm_01J9Z6Y8W2V4T0S5R3Q1P7N9M", "web-1", "%F0%9F%98%80"]) {
    for (const [m, suffix] of routes) {
      const b = expectError(await t.req(m!, `/machines/${id}${suffix}`), 404, "MACHINE_NOT_FOUND");
      assert.equal(b.error.field, undefined, `${m} ${id}${suffix}: not a field error`);
    }
    expectError(await t.req("POST", `/machines/${id}/exec`, { command: ["true"] }), 404, "MACHINE_NOT_FOUND");
    expectError(await t.req("POST", `/machines/${id}/files`, { path: "/tmp/a", content: "" }), 404, "MACHINE_NOT_FOUND");
    expectError(await t.req("POST", `/machines/${id}/fork`, { count: 1 }), 404, "MACHINE_NOT_FOUND");
  }
  // The message names the id as given, like an unknown one's.
  const b = expectError(await t.req("GET", "/machines/not-an-id"), 404, "MACHINE_NOT_FOUND");
  assert.match(b.error.message, /machine not-an-id does not exist/);
  // A bad query next to a malformed id: the id is what the client got wrong first.
  expectError(await t.req("GET", "/machines/nope/wait?status=bogus"), 404, "MACHINE_NOT_FOUND");
});

test("409 with the current status for actions the state machine refuses", async () => {
  const m = await create("conflicts");
  const stop = expectError(await t.req("POST", `/machines/${m.id}/stop`), 409, "INVALID_STATE_TRANSITION");
  assert.equal(stop.error.current_status, "created");
  const exec = expectError(await t.req("POST", `/machines/${m.id}/exec`, { command: ["true"] }), 409, "MACHINE_NOT_RUNNING");
  assert.equal(exec.error.current_status, "created");
  expectError(await t.req("GET", `/machines/${m.id}/files?path=/etc/hostname`), 409, "MACHINE_NOT_RUNNING");
  expectError(await t.req("POST", `/machines/${m.id}/files`, { path: "/tmp/a", content: "" }), 409, "MACHINE_NOT_RUNNING");
  expectError(await t.req("DELETE", `/machines/${m.id}/files?path=/tmp/a`), 409, "MACHINE_NOT_RUNNING");
});

test("a start that cannot boot ends in failed with last_error; wait says MACHINE_FAILED", async () => {
  const m = await create("doomed");
  const s = await t.req("POST", `/machines/${m.id}/start`);
  assert.equal(s.statusCode, 202, s.body);
  assert.equal(json(s).status, "starting");
  const w = expectError(await t.req("GET", `/machines/${m.id}/wait?status=running&timeout=30`), 409, "MACHINE_FAILED");
  assert.equal(w.error.current_status, "failed");
  const got = json<{ status: string; last_error: { code: string } | null }>(await t.req("GET", `/machines/${m.id}`));
  assert.equal(got.status, "failed");
  assert.ok(got.last_error?.code);
  const failed = json<Array<{ id: string }>>(await t.req("GET", "/machines?status=failed"));
  assert.ok(failed.some((x) => x.id === m.id));
  const history = statusHistory(join(t.dataDir, "hyperfleet.db"), m.id);
  assert.deepEqual(history.map((e) => e.toStatus), ["created", "starting", "failed"]);
});

test("wait: 408 WAIT_TIMEOUT with a clear body; query validated", async () => {
  const m = await create("waiter");
  const t0 = Date.now();
  const w = expectError(await t.req("GET", `/machines/${m.id}/wait?status=running&timeout=0.3`), 408, "WAIT_TIMEOUT");
  assert.ok(Date.now() - t0 >= 250);
  assert.equal(w.error.current_status, "created");
  assert.match(w.error.message, /did not reach 'running' within 0.3 s/);
  const ok = await t.req("GET", `/machines/${m.id}/wait?status=created`);
  assert.equal(ok.statusCode, 200);
  expectError(await t.req("GET", `/machines/${m.id}/wait?timeout=31`), 400, "INVALID_ARGUMENT", "timeout");
  expectError(await t.req("GET", `/machines/${m.id}/wait?timeout=abc`), 400, "INVALID_ARGUMENT", "timeout");
  expectError(await t.req("GET", `/machines/${m.id}/wait?status=sleeping`), 400, "INVALID_ARGUMENT", "status");
});

test("list: ?status= filters (one or a comma list) and is validated", async () => {
  const a = await create("list-a");
  const all = json<Array<{ id: string; status: string }>>(await t.req("GET", "/machines"));
  assert.ok(all.some((m) => m.id === a.id));
  const created = json<Array<{ status: string }>>(await t.req("GET", "/machines?status=created"));
  assert.ok(created.length > 0 && created.every((m) => m.status === "created"));
  const running = json<unknown[]>(await t.req("GET", "/machines?status=running"));
  assert.deepEqual(running, []);
  const both = json<Array<{ status: string }>>(await t.req("GET", "/machines?status=created,failed"));
  assert.ok(both.every((m) => m.status === "created" || m.status === "failed"));
  expectError(await t.req("GET", "/machines?status=bogus"), 400, "INVALID_ARGUMENT", "status");
  expectError(await t.req("GET", "/machines?other=1"), 400, "INVALID_ARGUMENT", "other");
});

test("exec and files: bodies and queries validated before anything runs", async () => {
  const m = await create("io-validation");
  const exec = (b: unknown) => t.req("POST", `/machines/${m.id}/exec`, b);
  expectError(await exec({}), 400, "INVALID_ARGUMENT", "command");
  expectError(await exec({ command: [] }), 400, "INVALID_ARGUMENT", "command");
  expectError(await exec({ command: "ls -la" }), 400, "INVALID_ARGUMENT", "command");
  expectError(await exec({ command: ["ls"], cmd: ["pwd"] }), 400, "INVALID_ARGUMENT", "cmd");
  expectError(await exec({ command: ["ls"], timeout: 0 }), 400, "INVALID_ARGUMENT", "timeout");
  expectError(await exec({ command: ["ls"], timeout: 99999 }), 400, "INVALID_ARGUMENT", "timeout");
  expectError(await exec({ command: ["ls"], cwd: "relative" }), 400, "INVALID_ARGUMENT", "cwd");

  const up = (b: unknown) => t.req("POST", `/machines/${m.id}/files`, b);
  expectError(await up({ path: "relative", content: "" }), 400, "INVALID_ARGUMENT", "path");
  expectError(await up({ path: "/tmp/a", content: "not base64!" }), 400, "INVALID_ARGUMENT", "content");
  expectError(await up({ path: "/tmp/a", content: "QQ" }), 400, "INVALID_ARGUMENT", "content");
  expectError(await up({ path: "/tmp/a", content: "", mode: "0999" }), 400, "INVALID_ARGUMENT", "mode");
  expectError(await up({ path: "/tmp/a", content: "", mode: 99999 }), 400, "INVALID_ARGUMENT", "mode");
  expectError(await t.req("GET", `/machines/${m.id}/files`), 400, "INVALID_ARGUMENT", "path");
  expectError(await t.req("GET", `/machines/${m.id}/files/stat?path=`), 400, "INVALID_ARGUMENT", "path");
  expectError(await t.req("DELETE", `/machines/${m.id}/files?path=/a&recursive=maybe`), 400, "INVALID_ARGUMENT", "recursive");
});

test("413 FILE_TOO_LARGE over HYPERFLEET_FILE_MAX_SIZE (here 1024 bytes), also when the body itself is too big", async () => {
  const m = await create("big-files");
  const over = Buffer.alloc(1025, 7).toString("base64");
  expectError(await t.req("POST", `/machines/${m.id}/files`, { path: "/tmp/big", content: over }), 413, "FILE_TOO_LARGE", "content");
  const huge = Buffer.alloc(200 * 1024, 7).toString("base64");
  expectError(await t.req("POST", `/machines/${m.id}/files`, { path: "/tmp/big", content: huge }), 413, "FILE_TOO_LARGE");
});

test("delete: 204, then 404; the history goes too", async () => {
  const m = await create("short-lived");
  const d = await t.req("DELETE", `/machines/${m.id}`);
  assert.equal(d.statusCode, 204, d.body);
  expectError(await t.req("GET", `/machines/${m.id}`), 404, "MACHINE_NOT_FOUND");
  expectError(await t.req("DELETE", `/machines/${m.id}`), 404, "MACHINE_NOT_FOUND");
  assert.deepEqual(statusHistory(join(t.dataDir, "hyperfleet.db"), m.id), []);
});

test("HYPERFLEET_AUTH=off (loopback only): no key needed", async () => {
  const open = await startTestDaemon({ ...NO_VM, HYPERFLEET_AUTH: "off" });
  try {
    const r = await open.daemon.app.inject({ method: "GET", url: "/machines" });
    assert.equal(r.statusCode, 200, r.body);
    const spec = json<{ security: unknown[] }>(await open.daemon.app.inject({ method: "GET", url: "/openapi.json" }));
    assert.deepEqual(spec.security, []);
  } finally {
    await open.close();
  }
});

test("logs?tail= takes only a plain decimal integer within the maximum: 1e9 and 1.5 are not 1", async () => {
  for (const tail of ["1e9", "1.5", "0x10", "1000001", "-1", "%205"]) {
    expectError(await t.req("GET", `/machines/${GHOST}/logs?tail=${tail}`), 400, "INVALID_ARGUMENT", "tail");
  }
  // A valid tail gets past validation (to the unknown machine).
  expectError(await t.req("GET", `/machines/${GHOST}/logs?tail=1000000`), 404, "MACHINE_NOT_FOUND");
  expectError(await t.req("GET", `/machines/${GHOST}/wait?timeout=1e1`), 400, "INVALID_ARGUMENT", "timeout");
});

test("an image reference the puller cannot parse is 400 at creation, not a 502 later", async () => {
  for (const image of ["[::1]:1/x:y", "[::1]:5000/app", "registry.lan:0/app", "registry.lan:70000/app"]) {
    expectError(await t.req("POST", "/machines", { name: "bad-ref", vcpu_count: 1, mem_size_mib: 256, image }), 400, "INVALID_ARGUMENT", "image");
    expectError(await t.req("POST", "/images/pull", { image }), 400, "INVALID_ARGUMENT", "image");
  }
});
