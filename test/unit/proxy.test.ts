/** The per-VM URL proxy's pure parts (src/proxy): hosts, routing, tokens, headers, URLs, openssl argv. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { checkToken, cookieValues, tokenMatches, withoutCookie, withoutTokenQuery } from "../../src/proxy/auth.js";
import { route, routeTo, type ProxyDirectory, type ProxyTarget } from "../../src/proxy/directory.js";
import { downstreamResponseHeaders, requestHead, upstreamRequestHeaders } from "../../src/proxy/headers.js";
import { hostName, parseHost } from "../../src/proxy/host.js";
import { caArgv, caFiles, leafExtensions, leafRequestArgv, leafSignArgv } from "../../src/proxy/openssl.js";
import { rawPage } from "../../src/proxy/pages.js";
import { machineUrls } from "../../src/proxy/urls.js";
import { checkServices } from "../../src/machines/proxied-services.js";
import { HyperfleetError } from "../../src/core/errors.js";
import { loadConfig } from "../../src/config/config.js";

const ID = "vm_01J9Z6Y8W2V4T0S5R3Q1P7N9M8";
const D = "hf.localhost";

test("host: <port>-<id>, <id>, <name>, <port>-<name>; any case; the proxy's port and a trailing dot ignored", () => {
  assert.deepEqual(parseHost(`8080-${ID.toLowerCase()}.${D}:8443`, D), { kind: "id", id: ID, port: 8080 });
  assert.deepEqual(parseHost(`8080-${ID}.HF.LOCALHOST`, D), { kind: "id", id: ID, port: 8080 });
  assert.deepEqual(parseHost(`${ID.toLowerCase()}.${D}`, D), { kind: "id", id: ID, port: null });
  assert.deepEqual(parseHost(`My-Agent.${D}.`, D), { kind: "name", name: "my-agent", port: null });
  assert.deepEqual(parseHost(`3000-my-agent.${D}`, D), { kind: "name", name: "my-agent", port: 3000 });
  assert.equal(hostName("[::1]:8443"), "[::1]");
});

test("host: other domains, nested labels, the bare domain and ports outside 1-65535 are not ours", () => {
  for (const h of [undefined, "", D, `x.other.test`, `a.b.${D}`, `0-x.${D}`, `65536-x.${D}`, `x.${D}.evil.test`, `evil${D}`]) {
    assert.equal(parseHost(h, D), undefined, String(h));
  }
});

const target = (over: Partial<ProxyTarget> = {}): ProxyTarget => ({
  id: ID,
  name: "agent",
  status: "running",
  ip: "10.210.0.3",
  services: [{ port: 8080, visibility: "private" }, { port: 9000, visibility: "public" }],
  token: "t0k",
  ...over,
});

test("route: the named port or the first service, upstream = network.ip:port", () => {
  const a = routeTo(target(), 9000);
  assert.ok(a.ok);
  assert.deepEqual([a.upstream, a.service.visibility], [{ host: "10.210.0.3", port: 9000 }, "public"]);
  const b = routeTo(target(), null);
  assert.ok(b.ok);
  assert.deepEqual(b.upstream, { host: "10.210.0.3", port: 8080 });
});

test("route: an unserved port or no services is 404; a machine not running is 502 naming it and its status", () => {
  const r = routeTo(target(), 1234);
  assert.ok(!r.ok);
  assert.deepEqual([r.refusal.status, r.refusal.code], [404, "MACHINE_NOT_FOUND"]);
  const none = routeTo(target({ services: [] }), null);
  assert.ok(!none.ok && none.refusal.status === 404);
  const stopped = routeTo(target({ status: "stopped" }), 8080);
  assert.ok(!stopped.ok);
  assert.deepEqual([stopped.refusal.status, stopped.refusal.code], [502, "MACHINE_NOT_RUNNING"]);
  assert.match(stopped.refusal.message, new RegExp(`agent \\(${ID}\\) is stopped`));
});

test("route: lookups by id and by name (case-insensitive), unknown and ambiguous names are 404", async () => {
  const seen: string[] = [];
  const dir = (byName: ProxyTarget[]): ProxyDirectory => ({
    byId: async (id) => (seen.push(`id:${id}`), id === ID ? target() : undefined),
    byName: async (n) => (seen.push(`name:${n}`), byName),
  });
  assert.ok((await route(parseHost(`8080-${ID.toLowerCase()}.${D}`, D), dir([]), "h")).ok);
  assert.ok((await route(parseHost(`AGENT.${D}`, D), dir([target()]), "h")).ok);
  assert.deepEqual(seen, [`id:${ID}`, "name:agent"]);
  const unknown = await route(parseHost(`nope.${D}`, D), dir([]), "h");
  assert.ok(!unknown.ok && unknown.refusal.status === 404);
  const twice = await route(parseHost(`agent.${D}`, D), dir([target(), target({ name: "Agent" })]), "h");
  assert.ok(!twice.ok && /more than one/.test(twice.refusal.message));
  const foreign = await route(parseHost("example.com", D), dir([]), "example.com");
  assert.ok(!foreign.ok && foreign.refusal.status === 404);
});

test("route: a directory's answer in hand gives the route in hand, no promise", () => {
  const dir: ProxyDirectory = { byId: (id) => (id === ID ? target() : undefined), byName: () => [target(), target({ name: "Agent" })] };
  const r = route(parseHost(`8080-${ID.toLowerCase()}.${D}`, D), dir, "h");
  assert.ok(!(r instanceof Promise) && r.ok && r.upstream.port === 8080);
  const twice = route(parseHost(`agent.${D}`, D), dir, "h");
  assert.ok(!(twice instanceof Promise) && !twice.ok && /more than one machine is named 'agent'/.test(twice.refusal.message));
});

const auth = (over: Partial<Parameters<typeof checkToken>[0]> = {}) => ({ header: undefined, cookie: undefined, url: "/", secure: true, ...over });

test("token: header, cookie (among others), wrong or missing refused, none set refuses everything", () => {
  assert.deepEqual(checkToken(auth({ header: "t0k" }), "t0k"), { ok: true });
  assert.deepEqual(checkToken(auth({ cookie: "a=1; hf_token=t0k; b=2" }), "t0k"), { ok: true });
  assert.equal(checkToken(auth({ header: "t0K" }), "t0k").ok, false);
  assert.equal(checkToken(auth({ cookie: "hf_token=nope" }), "t0k").ok, false);
  assert.equal(checkToken(auth(), "t0k").ok, false);
  assert.equal(checkToken(auth({ header: "t0k" }), null).ok, false);
  assert.equal(tokenMatches("abc", "abc"), true);
  assert.equal(tokenMatches("abc", "abcd"), false);
});

test("token: ?hf_token= sets a Secure HttpOnly cookie and redirects without it; a WebSocket just passes", () => {
  assert.deepEqual(checkToken(auth({ url: "/app?x=1&hf_token=t0k&y=2" }), "t0k"), {
    ok: "redirect",
    location: "/app?x=1&y=2",
    setCookie: "hf_token=t0k; Path=/; HttpOnly; SameSite=Lax; Secure",
  });
  const plain = checkToken(auth({ url: "/?hf_token=t0k", secure: false }), "t0k");
  assert.ok(plain.ok === "redirect" && plain.location === "/" && !plain.setCookie.includes("Secure"));
  assert.equal(checkToken(auth({ url: "/?hf_token=bad" }), "t0k").ok, false);
  assert.deepEqual(checkToken(auth({ url: "/ws?hf_token=t0k" }), "t0k", true), { ok: true });
  assert.equal(withoutTokenQuery("/a?hf_token=1"), "/a");
  assert.equal(withoutTokenQuery("/a?b=hf_token"), "/a?b=hf_token");
});

test("cookies: values by name, the token's removed and the rest kept", () => {
  assert.deepEqual(cookieValues("a=1; hf_token=x; hf_token=y", "hf_token"), ["x", "y"]);
  assert.equal(withoutCookie("a=1; hf_token=x;b=2", "hf_token"), "a=1; b=2");
  assert.equal(withoutCookie("hf_token=x", "hf_token"), undefined);
});

test("headers upstream: no token header or cookie, no hop-by-hop, client X-Forwarded-* replaced, cookies merged", () => {
  const raw = [
    "Host", "h", "X-Hyperfleet-Token", "secret", "Cookie", "hf_token=secret; a=1", "cookie", "b=2", "Connection", "keep-alive, X-Drop",
    "X-Drop", "1", "Keep-Alive", "5", "X-Forwarded-For", "6.6.6.6", "Content-Length", "3", "Upgrade", "websocket",
  ];
  const out = upstreamRequestHeaders(raw, { clientIp: "127.0.0.1", proto: "https", host: "h", upgrade: false });
  assert.deepEqual(out, ["Host", "h", "Content-Length", "3", "Cookie", "a=1; b=2", "X-Forwarded-For", "127.0.0.1", "X-Forwarded-Proto", "https", "X-Forwarded-Host", "h"]);
  const ws = upstreamRequestHeaders(["Host", "h", "Connection", "Upgrade", "Upgrade", "websocket", "Cookie", "hf_token=s"], { clientIp: "::1", proto: "http", host: "h", upgrade: true });
  assert.deepEqual(ws, ["Host", "h", "Connection", "Upgrade", "Upgrade", "websocket", "X-Forwarded-For", "::1", "X-Forwarded-Proto", "http", "X-Forwarded-Host", "h"]);
  assert.equal(requestHead("GET", "/x", ["A", "1"]), "GET /x HTTP/1.1\r\nA: 1\r\n\r\n");
  assert.deepEqual(downstreamResponseHeaders(["Transfer-Encoding", "chunked", "Set-Cookie", "s=1", "Connection", "close"]), ["Set-Cookie", "s=1"]);
});

test("pages: a raw refusal is a complete HTTP answer naming the code; the message is HTML-escaped", () => {
  const p = rawPage({ status: 502, code: "MACHINE_NOT_RUNNING", title: "Machine not running", message: "machine <b> is stopped" });
  assert.match(p, /^HTTP\/1\.1 502 Machine not running\r\n/);
  assert.match(p, /x-hyperfleet-error: MACHINE_NOT_RUNNING\r\n/);
  assert.ok(p.includes("machine &#60;b&#62; is stopped"));
  const [head, body] = p.split("\r\n\r\n");
  assert.equal(Number(/content-length: (\d+)/.exec(head!)?.[1]), Buffer.byteLength(body!));
});

test("urls: one per service, id lowercase, the proxy's port unless the scheme's default", () => {
  const m = { id: ID, name: "web", services: [{ port: 8080, visibility: "private" as const }, { port: 22, visibility: "public" as const }] };
  assert.deepEqual(machineUrls({ scheme: "https", domain: D, port: 8443 }, m), {
    urls: [
      { port: 8080, visibility: "private", url: `https://8080-${ID.toLowerCase()}.${D}:8443` },
      { port: 22, visibility: "public", url: `https://22-${ID.toLowerCase()}.${D}:8443` },
    ],
    nameUrl: `https://web.${D}:8443`,
  });
  assert.equal(machineUrls({ scheme: "https", domain: D, port: 443 }, m).urls[0]!.url, `https://8080-${ID.toLowerCase()}.${D}`);
  assert.equal(machineUrls({ scheme: "http", domain: D, port: 80 }, m).urls[1]!.url, `http://22-${ID.toLowerCase()}.${D}`);
});

test("urls: the name URL only when the proxy routes that name back to the machine's first service", () => {
  const base = { scheme: "https" as const, domain: D, port: 443 };
  const at = (name: string, services = [{ port: 80, visibility: "public" as const }]) => machineUrls(base, { id: ID, name, services }).nameUrl;
  assert.equal(at("My-App"), `https://my-app.${D}`, "lowercase, as the proxy reads host names");
  assert.equal(at("web", []), null, "no service, nothing to reach");
  assert.equal(at("a.b"), null, "two labels");
  assert.equal(at("8080-web"), null, "reads as port 8080 of 'web'");
  assert.equal(at(ID.toLowerCase()), null, "reads as a machine id");
  // Each listed name URL does route back: the same parse the proxy does per request.
  assert.deepEqual(parseHost(new URL(at("My-App")!).host, D), { kind: "name", name: "my-app", port: null });
});

test("openssl argv (golden): an EC CA, a *.<domain> request, a leaf signed with a given serial", () => {
  const f = caFiles("/d/proxy");
  assert.deepEqual(caArgv(f), [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "/d/proxy/ca.key", "-out", "/d/proxy/ca.crt",
    "-days", "3650", "-sha256", "-subj", "/O=Hyperfleet/CN=Hyperfleet local CA",
    "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  assert.deepEqual(leafRequestArgv(f, D), [
    "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "/d/proxy/proxy.key", "-out", "/d/proxy/proxy.csr", "-subj", "/O=Hyperfleet/CN=*.hf.localhost",
  ]);
  assert.deepEqual(leafSignArgv(f, "ab12"), [
    "x509", "-req", "-in", "/d/proxy/proxy.csr", "-CA", "/d/proxy/ca.crt", "-CAkey", "/d/proxy/ca.key", "-set_serial", "0xab12", "-days", "397", "-sha256", "-extfile", "/d/proxy/proxy.ext", "-out", "/d/proxy/proxy.crt",
  ]);
  assert.equal(leafExtensions(D), "subjectAltName=DNS:*.hf.localhost,DNS:hf.localhost\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n");
});

test("services on create: need a network (SERVICE_NEEDS_NETWORK), each port once, none is fine", () => {
  assert.deepEqual(checkServices(undefined, false), []);
  assert.deepEqual(checkServices([{ port: 80, visibility: "public" }], true), [{ port: 80, visibility: "public" }]);
  assert.throws(() => checkServices([{ port: 80, visibility: "public" }], false), (e) => e instanceof HyperfleetError && e.code === "SERVICE_NEEDS_NETWORK");
  assert.throws(
    () => checkServices([{ port: 80, visibility: "public" }, { port: 80, visibility: "private" }], true),
    (e) => e instanceof HyperfleetError && e.code === "INVALID_ARGUMENT" && (e.details as { field: string }).field === "services[1].port",
  );
});

test("config: no HYPERFLEET_PROXY_ADDR, no proxy; TLS from the pair, else a local CA under the data dir, or off", () => {
  const cfg = (env: Record<string, string>) => loadConfig({ HYPERFLEET_DATA_DIR: "/d", ...env });
  assert.equal(cfg({}).unwrap().proxy, null);
  assert.deepEqual(cfg({ HYPERFLEET_PROXY_ADDR: "127.0.0.1:8443" }).unwrap().proxy, {
    host: "127.0.0.1",
    port: 8443,
    domain: "hf.localhost",
    tls: { mode: "generated", dir: "/d/proxy" },
    maxConnections: 4096,
    maxHeaderBytes: 16384,
  });
  const p = cfg({ HYPERFLEET_PROXY_ADDR: "[::1]:443", HYPERFLEET_DOMAIN: ".Agents.Example.com.", HYPERFLEET_PROXY_TLS_CERT: "/c.pem", HYPERFLEET_PROXY_TLS_KEY: "/k.pem" }).unwrap().proxy;
  assert.deepEqual([p?.host, p?.port, p?.domain, p?.tls], ["::1", 443, "agents.example.com", { mode: "configured", certPath: "/c.pem", keyPath: "/k.pem" }]);
  assert.deepEqual(cfg({ HYPERFLEET_PROXY_ADDR: "0.0.0.0:80", HYPERFLEET_PROXY_TLS: "off" }).unwrap().proxy?.tls, { mode: "off" });
});

test("config: a bad address, domain, half a cert pair or TLS off with a cert are CONFIG_INVALID naming the variable", () => {
  const bad = (env: Record<string, string>, variable: string) => {
    const r = loadConfig({ HYPERFLEET_DATA_DIR: "/d", HYPERFLEET_PROXY_ADDR: "127.0.0.1:8443", ...env });
    assert.ok(!r.ok, JSON.stringify(env));
    assert.match(r.error.message, new RegExp(`^  ${variable} `, "m"), r.error.message);
  };
  bad({ HYPERFLEET_PROXY_ADDR: "8443" }, "HYPERFLEET_PROXY_ADDR");
  bad({ HYPERFLEET_PROXY_ADDR: "host:99999" }, "HYPERFLEET_PROXY_ADDR");
  bad({ HYPERFLEET_DOMAIN: "under_score.test" }, "HYPERFLEET_DOMAIN");
  bad({ HYPERFLEET_PROXY_TLS_CERT: "/c.pem" }, "HYPERFLEET_PROXY_TLS_KEY");
  bad({ HYPERFLEET_PROXY_TLS: "off", HYPERFLEET_PROXY_TLS_CERT: "/c.pem", HYPERFLEET_PROXY_TLS_KEY: "/k.pem" }, "HYPERFLEET_PROXY_TLS");
});
