/**
 * Hypercore's spawn API (issue 13 item 6) against a real daemon, a loopback registry and a real
 * VM: POST /spawn, GET /list, /logs and /stop with the documented shapes (`{response: ...}`),
 * `ports` and `url` from the exposed ports, the env list applied, and 4xx with stable codes for
 * bad input and unknown ids. Listed in OpenAPI under the Hypercore tag.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { vmSkipReason } from "./helpers.js";
import { body, exec, machineWhen, waitStatus, type ImageDaemon, startBusyboxDaemon, type BusyboxDaemon } from "./images-helpers.js";

const skip = vmSkipReason();
let fx: BusyboxDaemon | undefined;
let d: ImageDaemon;
let busybox = "";

before(async () => {
  if (skip) return;
  fx = await startBusyboxDaemon();
  ({ d, busybox } = fx);
});

after(async () => {
  await fx?.close();
});

const code = (r: Parameters<typeof body>[0]) => body<{ error: { code: string; field?: string } }>(r).error;

/** A loopback port nobody listens on right now (the daemon binds it for the forward). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
    s.on("error", reject);
  });
}

test("spawn, list, logs, stop with Hypercore's shapes; the env list reaches the workload", { skip: skip ?? false, timeout: 240_000 }, async () => {
  const r = await d.req("POST", "/spawn", { image_ref: busybox, cores: 1, memory: 256, env: ["API_KEY=k=v", "MODE=test"] });
  assert.equal(r.statusCode, 200, r.body);
  const spawned = body<{ response: { id: string; url: string | null } }>(r);
  assert.deepEqual(Object.keys(spawned), ["response"]);
  assert.deepEqual(Object.keys(spawned.response).sort(), ["id", "url"]);
  assert.match(spawned.response.id, /^vm_[0-9A-Z]{26}$/);
  assert.equal(spawned.response.url, null, "no ports and no network (HYPERFLEET_NETWORK_DEFAULT=off): nothing to reach");
  const id = spawned.response.id;

  const list = body<{ response: Array<Record<string, unknown>> }>(await d.req("GET", "/list"));
  const entry = list.response.find((x) => x.id === id);
  assert.deepEqual(
    { ...entry, status: "-" },
    { id, image_ref: busybox, cores: 1, memory: 256, ports: {}, url: null, status: "-" },
  );
  assert.ok(["starting", "running"].includes(String(entry?.status)), String(entry?.status));

  await waitStatus(d, id, "running", 180_000);
  const env = await exec(d, id, ["/bin/busybox", "sh", "-c", 'echo "$API_KEY $MODE"']);
  assert.equal(env.stdout, "k=v test\n", "the value keeps its '='");
  await machineWhen(d, id, (m) => m.main_process?.status === "exited", 30_000, "the image's Cmd to exit");
  const logs = await d.req("GET", `/logs?id=${id}`);
  assert.equal(logs.statusCode, 200, logs.body);
  const l = body<{ response: { id: string; logs: string } }>(logs);
  assert.equal(l.response.id, id);
  assert.match(l.response.logs, /^hello\n\[hyperfleet\] process \d+ exited with code 0\n$/);

  const stop = await d.req("GET", `/stop?id=${id}`);
  assert.equal(stop.statusCode, 200, stop.body);
  assert.deepEqual(body(stop), { response: { id } });
  assert.equal((await d.req("GET", `/machines/${id}`)).statusCode, 404, "stop ends the workload for good");
  assert.ok(!body<{ response: Array<{ id: string }> }>(await d.req("GET", "/list")).response.some((x) => x.id === id));
});

test("ports: the forward is created, url names the host address and port", { skip: skip ?? false, timeout: 120_000 }, async () => {
  const host = await freePort();
  const r = await d.req("POST", "/spawn", { image_ref: busybox, memory: 256, ports: { [String(host)]: 8080 } });
  assert.equal(r.statusCode, 200, r.body);
  const { id, url } = body<{ response: { id: string; url: string } }>(r).response;
  assert.equal(url, `http://127.0.0.1:${host}`);
  const entry = body<{ response: Array<Record<string, unknown>> }>(await d.req("GET", "/list")).response.find((x) => x.id === id);
  assert.deepEqual(entry?.ports, { [String(host)]: 8080 });
  assert.equal(entry?.url, url);
  const m = body<{ exposed_ports: unknown[] }>(await d.req("GET", `/machines/${id}`));
  assert.deepEqual(m.exposed_ports, [{ guest_port: 8080, host_port: host, host_ip: "127.0.0.1", protocol: "tcp" }]);
  assert.equal((await d.req("GET", `/stop?id=${id}`)).statusCode, 200);
});

test("bad input and unknown ids: 4xx with stable codes, never 500", { skip: skip ?? false, timeout: 60_000 }, async () => {
  const cases: Array<[string, string, unknown, number, string, string?]> = [
    ["POST", "/spawn", {}, 400, "INVALID_ARGUMENT", "image_ref"],
    ["POST", "/spawn", { image_ref: busybox, cores: 0 }, 400, "INVALID_ARGUMENT", "cores"],
    ["POST", "/spawn", { image_ref: busybox, memory: "lots" }, 400, "INVALID_ARGUMENT", "memory"],
    ["POST", "/spawn", { image_ref: busybox, env: ["NOEQUALS"] }, 400, "INVALID_ARGUMENT", "env[0]"],
    ["POST", "/spawn", { image_ref: busybox, env: ["1BAD=x"] }, 400, "INVALID_ARGUMENT", "env[0]"],
    ["POST", "/spawn", { image_ref: busybox, ports: { "70000": 80 } }, 400, "INVALID_ARGUMENT", "ports.70000"],
    ["POST", "/spawn", { image_ref: busybox, ports: { http: 80 } }, 400, "INVALID_ARGUMENT"],
    ["POST", "/spawn", { image_ref: busybox, ports: { "8080": 0 } }, 400, "INVALID_ARGUMENT"],
    ["POST", "/spawn", { image_ref: busybox, extra: 1 }, 400, "INVALID_ARGUMENT"],
    ["GET", "/stop", undefined, 400, "INVALID_ARGUMENT", "id"],
    ["GET", "/logs", undefined, 400, "INVALID_ARGUMENT", "id"],
    ["GET", "/stop?id=vm_01J9Z6Y8W2V4T0S5R3Q1P7N9M8", undefined, 404, "MACHINE_NOT_FOUND"],
    ["GET", "/logs?id=vm_01J9Z6Y8W2V4T0S5R3Q1P7N9M8", undefined, 404, "MACHINE_NOT_FOUND"],
    ["GET", "/stop?id=not-an-id", undefined, 404, "MACHINE_NOT_FOUND"],
    ["GET", "/logs?id=..%2F..%2Fetc", undefined, 404, "MACHINE_NOT_FOUND"],
  ];
  for (const [method, url, payload, status, c, field] of cases) {
    const r = await d.req(method, url, payload);
    const what = `${method} ${url} ${JSON.stringify(payload)} -> ${r.statusCode} ${r.body}`;
    assert.equal(r.statusCode, status, what);
    assert.equal(code(r).code, c, what);
    if (field !== undefined) assert.equal(code(r).field, field, what);
  }
  const noKey = await d.daemon.app.inject({ method: "GET", url: "/list" });
  assert.equal(noKey.statusCode, 401);
  assert.equal(code(noKey).code, "UNAUTHENTICATED");
  assert.deepEqual(body<{ response: unknown[] }>(await d.req("GET", "/list")).response, [], "a refused spawn leaves no machine behind");
});

test("OpenAPI lists the four routes under the Hypercore tag, with their error codes", { skip: skip ?? false }, async () => {
  const doc = body<{ paths: Record<string, Record<string, { tags?: string[]; responses: Record<string, unknown> }>>; tags?: Array<{ name: string }> }>(
    await d.req("GET", "/openapi.json"),
  );
  for (const [path, method] of [["/spawn", "post"], ["/stop", "get"], ["/list", "get"], ["/logs", "get"]] as const) {
    const op = doc.paths[path]?.[method];
    assert.ok(op, `${method} ${path} is documented`);
    assert.deepEqual(op.tags, ["hypercore"]);
    assert.ok(op.responses["200"], `${path} documents its answer`);
    if (path !== "/list") assert.ok(op.responses["404"] ?? op.responses["400"], `${path} documents its errors`);
  }
  assert.ok(doc.tags?.some((t) => t.name === "hypercore"));
});
