/**
 * Issue 14, per-VM URLs: a real daemon (inside this file's namespaces, netns.ts) with its proxy on
 * 127.0.0.1 and a generated local CA. One machine serves busybox httpd on 80 (public), the same
 * with a CGI that prints its request headers on 8080 (private) and test/fixtures/ws-echo.c on 8765
 * (public). Every request goes through the proxy over TLS verified with the daemon's CA, by
 * `<port>-<id>.<domain>` or `<name>.<domain>` (the test has no DNS: it connects to the proxy's
 * address and names the host in SNI and Host, as a resolver for `*.hf.localhost` would have it).
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { vmSkipReason } from "../api/helpers.js";
import { startNetDaemon, type NetDaemon, type NetMachine } from "./daemon.js";
import { inTestNetns, netnsSkipReason } from "./netns.js";
import { viaProxy, type ProxyAt } from "./proxy-client.js";
import { buildStaticFixture, staticFixtureSkipReason, type Built } from "./static-fixture.js";
import { Op, WsClient } from "./ws-client.js";

const net = await inTestNetns(import.meta.url);
const skip = netnsSkipReason() ?? vmSkipReason() ?? staticFixtureSkipReason() ?? false;
const DOMAIN = "hf.localhost";
const WS_PORT = 8765;
const PINGS = 60;
const PONG_MS = 5000;

type UrlJson = { port: number; url: string; visibility: string };
let nd: NetDaemon | undefined;
let built: Built | undefined;
let vm: NetMachine & { urls: UrlJson[]; name_url: string | null };
let at: ProxyAt;
let token = "";

/** `<label>.<domain>` of a URL the machine JSON gave. */
const hostOf = (url: string) => new URL(url).hostname;
const urlFor = (port: number) => {
  const u = vm.urls.find((x) => x.port === port);
  assert.ok(u, `no URL for port ${port}: ${JSON.stringify(vm.urls)}`);
  return u;
};

before(async () => {
  if (!net || skip) return;
  built = await buildStaticFixture("ws-echo");
  nd = await startNetDaemon({ HYPERFLEET_PROXY_ADDR: "127.0.0.1:0", HYPERFLEET_DOMAIN: DOMAIN });
  const services = [
    { port: 80, visibility: "public" },
    { port: 8080, visibility: "private" },
    { port: WS_PORT, visibility: "public" },
  ];
  vm = (await nd.boot({ name: `Agent-${process.pid}`, services })) as typeof vm;
  const proxyPort = Number(new URL(vm.urls[0]!.url).port);
  at = { addr: "127.0.0.1", port: proxyPort, ca: await readFile(join(nd.dataDir, "proxy", "ca.crt")) };
  const t = await nd.d.fetch("GET", `/machines/${vm.id}/token`);
  assert.equal(t.status, 200, JSON.stringify(t.body));
  token = t.body.token as string;
  await nd.upload(vm.id, "/tmp/ws-echo", await readFile(built.path), "0755");
  // busybox httpd passes a CGI's header lines as written, LF-ended: the proxy must take that.
  const cgi = '#!/bin/sh\necho "Content-Type: text/plain"\necho\nenv | grep ^HTTP_ | sort\n';
  await nd.upload(vm.id, "/tmp/priv/cgi-bin/env", Buffer.from(cgi), "0755");
  const r = await nd.sh(
    vm.id,
    [
      "mkdir -p /tmp/www && echo hello-from-guest > /tmp/www/index.html",
      "httpd -p 80 -h /tmp/www </dev/null >/dev/null 2>&1",
      "httpd -p 8080 -h /tmp/priv </dev/null >/dev/null 2>&1",
      // setsid: its own session, which the exec's end does not kill.
      `setsid /tmp/ws-echo ${WS_PORT} </dev/null >/tmp/ws-echo.log 2>&1 &`,
    ].join("\n"),
  );
  assert.equal(r.exit_code, 0, `start servers: ${r.stdout}${r.stderr}`);
});

after(async () => {
  try {
    await nd?.close();
  } finally {
    await built?.remove();
  }
});

/** Retried while the guest's servers start (they were started by the exec before). */
async function untilServed<T>(what: string, fn: () => Promise<T>, ok: (v: T) => boolean): Promise<T> {
  let last: unknown;
  for (const deadline = Date.now() + 20_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 250))) {
    try {
      last = await fn();
      if (ok(last as T)) return last as T;
    } catch (e) {
      last = (e as Error).message;
    }
  }
  throw new Error(`${what}: not served in 20 s: ${JSON.stringify(last)}`);
}

test("machine JSON lists its URLs; services need a network (400 SERVICE_NEEDS_NETWORK)", { skip }, async () => {
  const id = vm.id.toLowerCase();
  assert.deepEqual(
    vm.urls,
    [80, 8080, WS_PORT].map((port, i) => ({ port, url: `https://${port}-${id}.${DOMAIN}:${at.port}`, visibility: i === 1 ? "private" : "public" })),
  );
  const r = await nd!.d.fetch("POST", "/machines", { name: `nonet-${process.pid}`, vcpu_count: 1, mem_size_mib: 128, network: false, services: [{ port: 80 }] });
  assert.deepEqual([r.status, (r.body.error as { code: string }).code], [400, "SERVICE_NEEDS_NETWORK"], JSON.stringify(r.body));
});

test("an HTTP request by <port>-<id>.<domain> and by <name>.<domain>, TLS verified with the generated CA", { skip }, async () => {
  const a = await untilServed("port 80", () => viaProxy(at, hostOf(urlFor(80).url)), (x) => x.status === 200);
  assert.equal(a.body.trim(), "hello-from-guest");
  // The name as created has capitals: DNS labels are not case-sensitive, nor is the match. The
  // machine JSON's name_url is that host.
  assert.equal(vm.name_url, `https://${vm.name.toLowerCase()}.${DOMAIN}:${at.port}`);
  const b = await viaProxy(at, hostOf(vm.name_url!));
  assert.deepEqual([b.status, b.body.trim()], [200, "hello-from-guest"]);
});

test("a private service: 401 without or with a wrong token, served with the header and with the cookie, token never upstream", { skip }, async () => {
  const h = hostOf(urlFor(8080).url);
  const none = await viaProxy(at, h, "/cgi-bin/env");
  assert.deepEqual([none.status, none.headers["x-hyperfleet-error"]], [401, "UNAUTHENTICATED"]);
  assert.equal((await viaProxy(at, h, "/cgi-bin/env", { "x-hyperfleet-token": "not-the-token" })).status, 401);
  const byHeader = await untilServed("port 8080", () => viaProxy(at, h, "/cgi-bin/env", { "x-hyperfleet-token": token }), (x) => x.status === 200);
  const byCookie = await viaProxy(at, h, "/cgi-bin/env", { cookie: `theme=dark; hf_token=${token}` });
  assert.equal(byCookie.status, 200);
  for (const seen of [byHeader.body, byCookie.body]) {
    assert.match(seen, /^HTTP_X_FORWARDED_PROTO=https$/m, seen);
    assert.ok(!seen.includes(token), `the guest saw the token: ${seen}`);
    assert.ok(!/HYPERFLEET_TOKEN/i.test(seen), seen);
  }
  assert.match(byCookie.body, /^HTTP_COOKIE=theme=dark$/m);
  // Rotated: the old token is refused from the next request on.
  const rot = await nd!.d.fetch("POST", `/machines/${vm.id}/token/rotate`);
  assert.equal(rot.status, 200);
  assert.equal((await viaProxy(at, h, "/cgi-bin/env", { "x-hyperfleet-token": token })).status, 401);
  token = rot.body.token as string;
  assert.equal((await viaProxy(at, h, "/cgi-bin/env", { "x-hyperfleet-token": token })).status, 200);
});

test("unknown machine or unserved port: 404 page", { skip }, async () => {
  const unknown = await viaProxy(at, `80-vm_01aaaaaaaaaaaaaaaaaaaaaaaa.${DOMAIN}`);
  assert.deepEqual([unknown.status, unknown.headers["x-hyperfleet-error"]], [404, "MACHINE_NOT_FOUND"]);
  assert.equal((await viaProxy(at, `nobody-${process.pid}.${DOMAIN}`)).status, 404);
  assert.equal((await viaProxy(at, `81-${vm.id.toLowerCase()}.${DOMAIN}`)).status, 404);
});

test("a WebSocket through the proxy by <port>-<id>.<domain> stays open for 60 s of messages, each answered", { skip, timeout: 180_000 }, async (t) => {
  const h = hostOf(urlFor(WS_PORT).url);
  const ws = await untilServed(
    "ws-echo",
    () => WsClient.connect(at.addr, at.port, 5000, { tls: { ca: at.ca!, servername: h }, hostHeader: h }),
    () => true,
  );
  try {
    const started = Date.now();
    const rtt: number[] = [];
    for (let i = 0; i < PINGS; i++) {
      await new Promise((r) => setTimeout(r, Math.max(0, started + i * 1000 - Date.now())));
      const sent = Date.now();
      ws.send(Op.text, `message ${i}`);
      const echo = await ws.next(PONG_MS, `the echo of message ${i} (${Math.round((sent - started) / 1000)} s in)`);
      assert.deepEqual([echo.opcode, echo.payload.toString()], [Op.text, `message ${i}`]);
      rtt.push(Date.now() - sent);
      if (i % 10 === 9) {
        ws.send(Op.ping, `ping ${i}`);
        const pong = await ws.next(PONG_MS, `the pong of ping ${i}`);
        assert.deepEqual([pong.opcode, pong.payload.toString()], [Op.pong, `ping ${i}`]);
      }
    }
    assert.ok(Date.now() - started >= (PINGS - 1) * 1000, "the connection was held for the whole minute");
    rtt.sort((a, b) => a - b);
    t.diagnostic(`echo round trip through the proxy: p50 ${rtt[PINGS >> 1]} ms, max ${rtt[PINGS - 1]} ms`);
  } finally {
    ws.destroy();
  }
});

test("a stopped machine: 502 naming it and its status, at once (no hang)", { skip }, async () => {
  const s = await nd!.d.fetch("POST", `/machines/${vm.id}/stop`);
  assert.equal(s.status, 202, JSON.stringify(s.body));
  const w = await nd!.d.fetch("GET", `/machines/${vm.id}/wait?status=stopped&timeout=30`);
  assert.equal(w.status, 200, JSON.stringify(w.body));
  const t0 = Date.now();
  const r = await viaProxy(at, hostOf(urlFor(80).url), "/", {}, 5000);
  assert.deepEqual([r.status, r.headers["x-hyperfleet-error"]], [502, "MACHINE_NOT_RUNNING"]);
  assert.ok(r.body.includes(`${vm.name} (${vm.id}) is stopped`), r.body);
  assert.ok(Date.now() - t0 < 3000, `answered in ${Date.now() - t0} ms`);
});
