import { test } from "node:test";
import assert from "node:assert/strict";
import { availableParallelism } from "node:os";
import { resolve } from "node:path";
import { forgetCredentials, isLoopbackHost, loadConfig } from "../../src/config/config.js";

function problemsOf(env: Record<string, string>): string {
  const r = loadConfig(env);
  assert.equal(r.ok, false, "expected CONFIG_INVALID");
  if (r.ok) return "";
  assert.equal(r.error.code, "CONFIG_INVALID");
  return r.error.message;
}

test("defaults match the documented ones", () => {
  const c = loadConfig({}).unwrap();
  assert.equal(c.port, 3000);
  assert.equal(c.host, "127.0.0.1");
  assert.equal(c.dataDir, "/var/lib/hyperfleet");
  assert.equal(c.assetsDir, "/var/lib/hyperfleet");
  assert.equal(c.socketDir, null);
  assert.deepEqual(c.guest, { kernelImagePath: null, initrdPath: null, kernelArgs: null, rootfsPath: null });
  assert.equal(c.fileTransferTimeoutMs, 60_000);
  assert.equal(c.fileMaxSize, 104_857_600);
  assert.equal(c.auth.enabled, true);
  assert.deepEqual(c.auth.apiKeys, []);
  assert.equal(c.stopVmsOnExit, false);
  assert.equal(c.oci.cacheDir, "/var/lib/hyperfleet/images");
  assert.equal(c.oci.maxCacheSize, 10_737_418_240);
  assert.equal(c.logLevel, "info");
  assert.equal(c.accel, "auto");
  assert.equal(c.maxConcurrentBoots, availableParallelism());
  assert.equal(c.maxConcurrentRestores, 4 * availableParallelism());
  assert.equal(c.startTimeoutMs, 60_000);
  assert.equal(c.stopTimeoutMs, 10_000);
});

test("the result is deeply frozen", () => {
  const c = loadConfig({}).unwrap();
  assert.ok(Object.isFrozen(c));
  assert.ok(Object.isFrozen(c.auth));
  assert.ok(Object.isFrozen(c.auth.apiKeys));
  assert.throws(() => {
    (c as { port: number }).port = 1;
  });
});

test("values are parsed", () => {
  const c = loadConfig({
    PORT: "8080",
    HOST: "0.0.0.0",
    HYPERFLEET_DATA_DIR: "rel/data",
    HYPERFLEET_API_KEY: " key-aaaaaaaaaaaaaaaa , key-bbbbbbbbbbbbbbbb ,",
    HYPERFLEET_FILE_MAX_SIZE: "1024",
    HYPERFLEET_STOP_VMS_ON_EXIT: "true",
    HYPERFLEET_KERNEL_ARGS: "console=ttyS0 quiet",
    LOG_LEVEL: "debug",
  }).unwrap();
  assert.equal(c.port, 8080);
  assert.equal(c.dataDir, resolve("rel/data"));
  assert.equal(c.oci.cacheDir, resolve("rel/data/images"));
  assert.deepEqual(c.auth.apiKeys, ["key-aaaaaaaaaaaaaaaa", "key-bbbbbbbbbbbbbbbb"]);
  assert.equal(c.fileMaxSize, 1024);
  assert.equal(c.stopVmsOnExit, true);
  assert.equal(c.guest.kernelArgs, "console=ttyS0 quiet");
  assert.equal(c.logLevel, "debug");
});

test("an invalid value names the variable", () => {
  assert.match(problemsOf({ PORT: "http" }), /PORT must be a whole number/);
  assert.match(problemsOf({ PORT: "70000" }), /PORT must be between 0 and 65535/);
  assert.match(problemsOf({ HYPERFLEET_FILE_MAX_SIZE: "-1" }), /HYPERFLEET_FILE_MAX_SIZE/);
  assert.match(problemsOf({ HYPERFLEET_FILE_TRANSFER_TIMEOUT: "1.5" }), /HYPERFLEET_FILE_TRANSFER_TIMEOUT/);
  assert.match(problemsOf({ LOG_LEVEL: "loud" }), /LOG_LEVEL must be one of/);
  assert.match(problemsOf({ HYPERFLEET_AUTH: "maybe" }), /HYPERFLEET_AUTH must be one of/);
  assert.match(problemsOf({ HYPERFLEET_API_KEY: "short" }), /HYPERFLEET_API_KEY each key needs at least 16/);
  assert.match(problemsOf({ HOST: "not a host!" }), /HOST must be an IP address/);
});

test("all problems are reported at once, the first one as details.field", () => {
  const r = loadConfig({ PORT: "x", LOG_LEVEL: "y" });
  assert.ok(!r.ok);
  if (r.ok) return;
  assert.match(r.error.message, /PORT/);
  assert.match(r.error.message, /LOG_LEVEL/);
  assert.equal(r.error.details?.field, "PORT");
});

test("auth can only be turned off on a loopback address", () => {
  assert.equal(loadConfig({ HYPERFLEET_AUTH: "off" }).unwrap().auth.enabled, false);
  assert.equal(loadConfig({ HYPERFLEET_AUTH: "off", HOST: "::1" }).unwrap().auth.enabled, false);
  assert.match(problemsOf({ HYPERFLEET_AUTH: "off", HOST: "0.0.0.0" }), /HYPERFLEET_AUTH is off.*HOST is '0.0.0.0'/);
  assert.match(problemsOf({ HYPERFLEET_AUTH: "false", HOST: "192.168.1.10" }), /HYPERFLEET_AUTH/);
});

test("isLoopbackHost", () => {
  for (const h of ["127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"]) assert.ok(isLoopbackHost(h), h);
  for (const h of ["0.0.0.0", "::", "10.0.0.1", "example.com", "128.0.0.1"]) assert.ok(!isLoopbackHost(h), h);
});

test("blank values count as unset", () => {
  assert.equal(loadConfig({ PORT: "  ", HYPERFLEET_API_KEY: "" }).unwrap().port, 3000);
});

test("request body limits: defaults, overrides and bounds", () => {
  assert.deepEqual(loadConfig({}).unwrap().http, { bodyTimeoutMs: 30_000, execMaxBody: 1_048_576, bodyBudget: 134_217_728 });
  const c = loadConfig({ HYPERFLEET_BODY_TIMEOUT: "500", HYPERFLEET_EXEC_MAX_BODY: "4096", HYPERFLEET_BODY_BUDGET: "2097152" }).unwrap();
  assert.deepEqual(c.http, { bodyTimeoutMs: 500, execMaxBody: 4096, bodyBudget: 2_097_152 });
  assert.match(problemsOf({ HYPERFLEET_BODY_TIMEOUT: "0" }), /HYPERFLEET_BODY_TIMEOUT/);
  assert.match(problemsOf({ HYPERFLEET_EXEC_MAX_BODY: "10" }), /HYPERFLEET_EXEC_MAX_BODY/);
  assert.match(problemsOf({ HYPERFLEET_BODY_BUDGET: "1k" }), /HYPERFLEET_BODY_BUDGET/);
});

test("networking settings (not active yet): defaults, overrides and what is refused", () => {
  const d = loadConfig({}).unwrap().network;
  assert.deepEqual(d, {
    defaultOn: true,
    subnet: "10.210.0.0/16",
    dns: [],
    portsBind: "127.0.0.1",
    portRange: { min: 20000, max: 29999 },
  });
  const c = loadConfig({
    HYPERFLEET_NETWORK_DEFAULT: "off",
    HYPERFLEET_SUBNET: "172.30.8.0/22",
    HYPERFLEET_DNS: "192.0.2.53, 198.51.100.53",
    HYPERFLEET_PORTS_BIND: "0.0.0.0",
    HYPERFLEET_PORT_RANGE: "40000-40099",
  }).unwrap().network;
  assert.deepEqual(c, {
    defaultOn: false,
    subnet: "172.30.8.0/22",
    dns: ["192.0.2.53", "198.51.100.53"],
    portsBind: "0.0.0.0",
    portRange: { min: 40000, max: 40099 },
  });
  assert.match(problemsOf({ HYPERFLEET_NETWORK_DEFAULT: "maybe" }), /HYPERFLEET_NETWORK_DEFAULT must be one of on, off/);
  assert.match(problemsOf({ HYPERFLEET_SUBNET: "10.0.0.0/8" }), /HYPERFLEET_SUBNET must have a prefix from \/16 to \/29/);
  assert.match(problemsOf({ HYPERFLEET_SUBNET: "10.210.0.1/16" }), /HYPERFLEET_SUBNET has host bits set/);
  assert.match(problemsOf({ HYPERFLEET_SUBNET: "127.0.0.0/16" }), /HYPERFLEET_SUBNET must not overlap 127\.0\.0\.0\/8/);
  assert.match(problemsOf({ HYPERFLEET_DNS: "dns.example" }), /HYPERFLEET_DNS must be comma-separated IPv4 addresses, got 'dns\.example'/);
  assert.match(problemsOf({ HYPERFLEET_DNS: "127.0.0.53" }), /HYPERFLEET_DNS 127\.0\.0\.53 is the host's own loopback/);
  assert.match(problemsOf({ HYPERFLEET_PORTS_BIND: "::1" }), /HYPERFLEET_PORTS_BIND must be an IPv4 address/);
  for (const bad of ["30000", "30000-20000", "0-100", "1-70000", "a-b"]) {
    assert.match(problemsOf({ HYPERFLEET_PORT_RANGE: bad }), /HYPERFLEET_PORT_RANGE must be 'low-high'/, bad);
  }
  // An exposed port DNATed onto the API's port would take the API's traffic.
  assert.match(problemsOf({ PORT: "25000" }), /HYPERFLEET_PORT_RANGE 20000-29999 contains the API's PORT 25000/);
  assert.match(problemsOf({ PORT: "8080", HYPERFLEET_PORT_RANGE: "8000-8999" }), /contains the API's PORT 8080/);
});

test("forgetCredentials drops the key and API key variables, and nothing else, once the config holds them", () => {
  const env: Record<string, string | undefined> = { HYPERFLEET_SECRET_KEY: "ab".repeat(32), HYPERFLEET_API_KEY: "a".repeat(32), HYPERFLEET_DATA_DIR: "/tmp/x", PATH: "/bin" };
  const cfg = loadConfig(env as Record<string, string>).unwrap();
  forgetCredentials(env);
  assert.deepEqual(env, { HYPERFLEET_DATA_DIR: "/tmp/x", PATH: "/bin" });
  assert.equal(cfg.secretKey, "ab".repeat(32), "the config keeps what it read");
});
