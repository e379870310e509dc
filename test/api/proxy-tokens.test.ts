/**
 * Per-VM URLs at the API (no VM boots): `services` on create, the machine's `urls`, the access
 * token in the create answer, GET /machines/:id/token and its rotation, and the refusals.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { json, startTestDaemon, type TestDaemon } from "./helpers.js";

let td: TestDaemon;
before(async () => {
  td = await startTestDaemon({ HYPERFLEET_PROXY_ADDR: "127.0.0.1:0", HYPERFLEET_DOMAIN: "Agents.Example.TEST" });
});
after(async () => td?.close());

type M = { id: string; urls: Array<{ port: number; url: string; visibility: string }>; name_url: string | null; access_token?: string };

test("create: services become urls (first listed first), the answer carries the token once; GET shows urls, never the token", async () => {
  const r = await td.req("POST", "/machines", { name: "svc", vcpu_count: 1, mem_size_mib: 128, network: {}, services: [{ port: 8080 }, { port: 22, visibility: "public" }] });
  assert.equal(r.statusCode, 201, r.body);
  const m = json<M>(r);
  const port = Number(new URL(m.urls[0]!.url).port);
  assert.ok(port > 0);
  const id = m.id.toLowerCase();
  assert.deepEqual(m.urls, [
    { port: 8080, url: `https://8080-${id}.agents.example.test:${port}`, visibility: "private" },
    { port: 22, url: `https://22-${id}.agents.example.test:${port}`, visibility: "public" },
  ]);
  assert.equal(m.name_url, `https://svc.agents.example.test:${port}`, "the first service by name");
  assert.match(m.access_token ?? "", /^[A-Za-z0-9_-]{43}$/);
  const got = await td.req("GET", `/machines/${m.id}`);
  assert.deepEqual(json<M>(got).urls, m.urls);
  assert.equal(json<M>(got).name_url, m.name_url);
  assert.ok(!got.body.includes(m.access_token!), "GET /machines/:id never shows the token");
  assert.ok(!(await td.req("GET", "/machines")).body.includes(m.access_token!));
  const tok = await td.req("GET", `/machines/${m.id}/token`);
  assert.deepEqual([tok.statusCode, json(tok)], [200, { token: m.access_token }]);
  const rot = await td.req("POST", `/machines/${m.id}/token/rotate`);
  assert.equal(rot.statusCode, 200);
  const fresh = json<{ token: string }>(rot).token;
  assert.notEqual(fresh, m.access_token);
  assert.equal(json<{ token: string }>(await td.req("GET", `/machines/${m.id}/token`)).token, fresh);
});

test("a machine without services has no urls (nor a name URL), a dotted name gets none; tokens of unknown machines are 404", async () => {
  const r = await td.req("POST", "/machines", { name: "plain", vcpu_count: 1, mem_size_mib: 128, network: false });
  assert.deepEqual(json<M>(r).urls, []);
  assert.equal(json<M>(r).name_url, null);
  const dotted = await td.req("POST", "/machines", { name: "api.v2", vcpu_count: 1, mem_size_mib: 128, network: {}, services: [{ port: 80 }] });
  assert.equal(dotted.statusCode, 201, dotted.body);
  assert.equal(json<M>(dotted).urls.length, 1);
  assert.equal(json<M>(dotted).name_url, null, "a name with a '.' is no host label: reachable by <port>-<id> only");
  for (const [method, path] of [["GET", "/machines/vm_01AAAAAAAAAAAAAAAAAAAAAAAA/token"], ["POST", "/machines/vm_01AAAAAAAAAAAAAAAAAAAAAAAA/token/rotate"]] as const) {
    const t = await td.req(method, path);
    assert.deepEqual([t.statusCode, json<{ error: { code: string } }>(t).error.code], [404, "MACHINE_NOT_FOUND"]);
  }
});

test("refusals: services without a network, a port twice, out of range, a bad visibility, more than 16", async () => {
  const create = (extra: Record<string, unknown>) => td.req("POST", "/machines", { name: `bad-${Math.random().toString(36).slice(2)}`, vcpu_count: 1, mem_size_mib: 128, ...extra });
  const code = async (extra: Record<string, unknown>) => {
    const r = await create(extra);
    return [r.statusCode, json<{ error: { code: string; field?: string } }>(r).error.code];
  };
  assert.deepEqual(await code({ network: false, services: [{ port: 80 }] }), [400, "SERVICE_NEEDS_NETWORK"]);
  const twice = await create({ network: {}, services: [{ port: 80 }, { port: 80, visibility: "public" }] });
  assert.deepEqual([twice.statusCode, json<{ error: { field: string } }>(twice).error.field], [400, "services[1].port"]);
  assert.deepEqual(await code({ network: {}, services: [{ port: 0 }] }), [400, "INVALID_ARGUMENT"]);
  assert.deepEqual(await code({ network: {}, services: [{ port: 80, visibility: "open" }] }), [400, "INVALID_ARGUMENT"]);
  assert.deepEqual(await code({ network: {}, services: Array.from({ length: 17 }, (_, i) => ({ port: 1000 + i })) }), [400, "INVALID_ARGUMENT"]);
});
