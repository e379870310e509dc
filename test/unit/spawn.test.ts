/** Hypercore spawn shapes <-> machine requests and views (src/api/spawn.ts), pure. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnEnv, spawnListEntry, spawnRequest, spawnUrl } from "../../src/api/spawn.js";
import { HyperfleetError } from "../../src/core/errors.js";
import type { MachineView } from "../../src/core/ports/services.js";

const field = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof HyperfleetError);
    assert.equal(e.code, "INVALID_ARGUMENT");
    return (e.details as { field?: string } | undefined)?.field;
  }
  assert.fail("expected INVALID_ARGUMENT");
};

test("env list: KEY=value, '=' kept in the value, a later entry wins, bad entries name their index", () => {
  assert.deepEqual(spawnEnv(["A=1", "B=x=y", "A=2", "E="]), { A: "2", B: "x=y", E: "" });
  assert.equal(field(() => spawnEnv(["A=1", "NOEQ"])), "env[1]");
  assert.equal(field(() => spawnEnv(["=x"])), "env[0]");
  assert.equal(field(() => spawnEnv(["9A=x"])), "env[0]");
});

test("request: started at once, defaults, ports give a network and map host -> guest", () => {
  const plain = spawnRequest({ image_ref: "alpine:3" }, "spawn-x");
  assert.deepEqual(plain, { name: "spawn-x", vcpuCount: 1, memSizeMib: 1024, env: {}, metadata: {}, start: true, image: "alpine:3" });
  const r = spawnRequest({ image_ref: "a", cores: 2, memory: 2048, ports: { "443": 8080 }, env: ["K=v"] }, "n");
  assert.deepEqual(r.exposedPorts, [{ hostPort: 443, guestPort: 8080 }]);
  assert.deepEqual(r.network, {});
  assert.deepEqual([r.vcpuCount, r.memSizeMib, r.env], [2, 2048, { K: "v" }]);
  assert.equal(field(() => spawnRequest({ image_ref: "a", ports: { "0": 80 } }, "n")), "ports.0");
  assert.equal(field(() => spawnRequest({ image_ref: "a", ports: { "65536": 80 } }, "n")), "ports.65536");
});

const view = (over: Partial<MachineView>) =>
  ({ id: "vm_X", imageRef: "a", vcpuCount: 1, memSizeMib: 256, status: "running", exposedPorts: [], network: null, urls: [], nameUrl: null, ...over }) as MachineView;

test("url: first TCP forward (wildcard bind: the client's host name), else the machine's ip, else null", () => {
  const tcp = { guestPort: 8080, hostPort: 9000, hostIp: "127.0.0.1", protocol: "tcp" as const };
  const udp = { guestPort: 53, hostPort: 5353, hostIp: "127.0.0.1", protocol: "udp" as const };
  const net = { ip: "10.0.0.5" } as MachineView["network"];
  assert.equal(spawnUrl(view({ exposedPorts: [udp, tcp], network: net }), "h"), "http://127.0.0.1:9000");
  assert.equal(spawnUrl(view({ exposedPorts: [{ ...tcp, hostIp: "0.0.0.0" }], network: net }), "gw.example"), "http://gw.example:9000");
  assert.equal(spawnUrl(view({ network: net }), "h"), "http://10.0.0.5");
  assert.equal(spawnUrl(view({}), "h"), null);
  assert.deepEqual(spawnListEntry(view({ exposedPorts: [udp, tcp], network: net }), "h"), {
    id: "vm_X",
    image_ref: "a",
    cores: 1,
    memory: 256,
    ports: { "9000": 8080 },
    url: "http://127.0.0.1:9000",
    status: "running",
  });
});

test("with the proxy on, the url is the first service's proxy URL, and ports become public services", () => {
  const net = { ip: "10.0.0.5" } as MachineView["network"];
  const urls = [{ port: 8080, url: "https://8080-vm_x.hf.localhost:8443", visibility: "public" as const }];
  assert.equal(spawnUrl(view({ network: net, urls }), "h"), "https://8080-vm_x.hf.localhost:8443");
  const r = spawnRequest({ image_ref: "a", ports: { "443": 8080, "444": 8080, "80": 81 } }, "n");
  assert.deepEqual(r.services, [{ port: 81, visibility: "public" }, { port: 8080, visibility: "public" }]);
});
