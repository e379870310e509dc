/**
 * The per-VM URL proxy (src/proxy/server.ts) with its real generated CA (openssl) in front of real
 * upstream servers on 127.0.0.1: what the network test shows with a VM, here quickly and with the
 * cases a guest makes hard to arrange (a body streamed in pieces, a refused port).
 */
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { request as httpsRequest } from "node:https";
import { localCaCertificate } from "../../src/proxy/ca.js";
import type { ProxyDirectory, ProxyTarget } from "../../src/proxy/directory.js";
import { ProxyServer } from "../../src/proxy/server.js";
import { viaProxy, type ProxyAt } from "../network/proxy-client.js";
import { Op, WsClient } from "../network/ws-client.js";
import { createHash } from "node:crypto";
import { spawn } from "node:child_process";
import { connect as tcpConnect } from "node:net";

const D = "hf.localhost";
const ID = "vm_01J9Z6Y8W2V4T0S5R3Q1P7N9M8";
const TOKEN = "tok-0123456789";
let dir = "";
let upstream: Server;
let upPort = 0;
let proxy: ProxyServer;
let at: ProxyAt;
let release: (() => void) | null = null;
const seen: IncomingMessage["headers"][] = [];
const machines = new Map<string, ProxyTarget>();

const silent = { info() {}, warn() {}, error() {}, debug() {}, trace() {}, fatal() {}, child() { return silent; } } as never;
/** What the shared proxy warned about, [fields, message] each. */
const warned: unknown[][] = [];
const recording = { ...(silent as object), warn: (...a: unknown[]) => void warned.push(a), child: () => recording } as never;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "hft-proxy-"));
  upstream = createServer((req, res) => {
    seen.push(req.headers);
    if (req.url === "/stream") {
      // First piece now, the rest when the test says: a buffering proxy would deliver neither.
      res.writeHead(200, { "content-type": "text/plain" });
      res.write("first;");
      release = () => res.end("second");
      return;
    }
    if (req.url === "/echo") {
      req.pipe(res);
      return;
    }
    if (req.url === "/cut") {
      // A guest that dies mid-answer: the head and a piece of a longer body, then the socket goes.
      res.writeHead(200, { "content-length": "100" });
      res.write("partial", () => res.socket?.destroy());
      return;
    }
    res.end(`hello ${req.url}`);
  });
  upstream.on("upgrade", (req: IncomingMessage, sock: Socket) => {
    seen.push(req.headers);
    const accept = createHash("sha1").update(`${req.headers["sec-websocket-key"]}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest("base64");
    // http servers allow half-open sockets: end ours when the proxy ends its side, as a real server does.
    sock.on("end", () => sock.end());
    sock.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
    // Answer each masked text frame (< 126 bytes) with the same text unmasked.
    sock.on("data", (d: Buffer) => {
      const len = d[1]! & 0x7f;
      const mask = d.subarray(2, 6);
      const text = Buffer.from(d.subarray(6, 6 + len).map((b, i) => b ^ mask[i % 4]!));
      sock.write(Buffer.concat([Buffer.from([0x81, len]), text]));
    });
  });
  await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
  upPort = (upstream.address() as AddressInfo).port;
  const base = { id: ID, name: "agent", status: "running", ip: "127.0.0.1", token: TOKEN };
  machines.set(ID, { ...base, services: [{ port: upPort, visibility: "private" }, { port: 1, visibility: "public" }] });
  const pub = "vm_01J9Z6Y8W2V4T0S5R3Q1P7N9M9";
  machines.set(pub, { ...base, id: pub, name: "pub", services: [{ port: upPort, visibility: "public" }] });
  const off = "vm_01J9Z6Y8W2V4T0S5R3Q1P7N9MA";
  machines.set(off, { ...base, id: off, name: "off", status: "stopped", services: [{ port: upPort, visibility: "public" }] });
  const directory: ProxyDirectory = {
    byId: async (id) => machines.get(id),
    byName: async (n) => [...machines.values()].filter((m) => m.name.toLowerCase() === n),
  };
  const cert = await localCaCertificate(join(dir, "proxy"), D);
  proxy = await ProxyServer.listen({ host: "127.0.0.1", port: 0, domain: D, tls: { cert: cert.cert, key: cert.key }, maxConnections: 64, maxHeaderBytes: 16384, directory, log: recording });
  at = { addr: "127.0.0.1", port: proxy.port, ca: await readFile(cert.caPath!) };
});

after(async () => {
  try {
    release?.();
    await proxy?.close();
    // close() waits for every connection; a pending promise with nothing else alive would let the
    // process exit before the temp dir is removed.
    upstream?.closeAllConnections();
    await new Promise((r) => upstream?.close(r));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

const host = (label: string) => `${label}.${D}`;

test("the generated CA: key 0600 in a 0700 dir, leaf for *.<domain> signed by it, kept across starts", async () => {
  const p = join(dir, "proxy");
  assert.equal((await stat(join(p, "ca.key"))).mode & 0o777, 0o600);
  assert.equal((await stat(join(p, "proxy.key"))).mode & 0o777, 0o600);
  assert.equal((await stat(p)).mode & 0o777, 0o700);
  const ca = new X509Certificate(await readFile(join(p, "ca.crt")));
  const leaf = new X509Certificate(await readFile(join(p, "proxy.crt")));
  assert.ok(ca.ca && !leaf.ca && leaf.verify(ca.publicKey));
  assert.equal(leaf.checkHost(`8080-x.${D}`), `*.${D}`);
  const again = await localCaCertificate(p, D);
  assert.equal(again.createdCa, false);
  assert.ok(new X509Certificate(again.cert).verify(ca.publicKey), "the same CA signs");
  const other = await localCaCertificate(p, "other.test");
  assert.equal(new X509Certificate(other.cert).checkHost("a.other.test"), "*.other.test", "a new domain gets a new leaf");
  await localCaCertificate(p, D);
});

test("public service by <port>-<id> and by <name> (any case), over TLS verified with the CA", async () => {
  const a = await viaProxy(at, host(`${upPort}-vm_01j9z6y8w2v4t0s5r3q1p7n9m9`), "/x?y=1");
  assert.deepEqual([a.status, a.body], [200, "hello /x?y=1"]);
  const b = await viaProxy(at, host("PUB"), "/");
  assert.deepEqual([b.status, b.body], [200, "hello /"]);
  const fwd = seen.at(-1)!;
  assert.equal(fwd["x-forwarded-proto"], "https");
  assert.equal(fwd["x-forwarded-for"], "127.0.0.1");
  assert.equal(fwd["x-forwarded-host"], `${host("PUB")}:${at.port}`);
});

test("private: 401 without or with a wrong token; header and cookie served; the token never reaches upstream", async () => {
  const h = host(`${upPort}-${ID.toLowerCase()}`);
  const none = await viaProxy(at, h);
  assert.equal(none.status, 401);
  assert.equal(none.headers["x-hyperfleet-error"], "UNAUTHENTICATED");
  assert.equal((await viaProxy(at, h, "/", { "x-hyperfleet-token": "wrong" })).status, 401);
  const before = seen.length;
  const byHeader = await viaProxy(at, h, "/a", { "x-hyperfleet-token": TOKEN });
  const byCookie = await viaProxy(at, host("agent"), "/b", { cookie: `x=1; hf_token=${TOKEN}` });
  assert.deepEqual([byHeader.status, byHeader.body, byCookie.status, byCookie.body], [200, "hello /a", 200, "hello /b"]);
  assert.equal(seen.length, before + 2, "refused requests never reached upstream");
  for (const s of seen.slice(before)) {
    assert.equal(s["x-hyperfleet-token"], undefined);
    assert.ok(!JSON.stringify(s).includes(TOKEN), `token upstream: ${JSON.stringify(s)}`);
  }
  assert.equal(seen.at(-1)!.cookie, "x=1");
});

test("?hf_token= sets the cookie and redirects to the URL without it", async () => {
  const r = await viaProxy(at, host("agent"), `/app?hf_token=${TOKEN}&q=1`);
  assert.equal(r.status, 302);
  assert.equal(r.headers.location, "/app?q=1");
  assert.match(String(r.headers["set-cookie"]), new RegExp(`^hf_token=${TOKEN}; Path=/; HttpOnly; SameSite=Lax; Secure$`));
});

test("unknown machine or port 404, stopped machine 502 naming it, refused port 502, foreign host 404", async () => {
  const unknown = await viaProxy(at, host("nobody"));
  assert.deepEqual([unknown.status, unknown.headers["x-hyperfleet-error"]], [404, "MACHINE_NOT_FOUND"]);
  assert.equal((await viaProxy(at, host(`9-${ID.toLowerCase()}`))).status, 404);
  const stopped = await viaProxy(at, host("off"));
  assert.equal(stopped.status, 502);
  assert.match(stopped.body, /machine off \(vm_01J9Z6Y8W2V4T0S5R3Q1P7N9MA\) is stopped/);
  // Port 1 on loopback: nothing listens, the connect is refused at once.
  const refused = await viaProxy(at, host(`1-${ID.toLowerCase()}`));
  assert.deepEqual([refused.status, refused.headers["x-hyperfleet-error"]], [502, "PROXY_UPSTREAM_UNREACHABLE"]);
});

test("bodies stream: the first piece arrives before the upstream ends; a request body is piped back", async () => {
  const got = await new Promise<string[]>((resolve, reject) => {
    const req = httpsRequest({ host: at.addr, port: at.port, path: "/stream", headers: { host: host("pub") }, ca: at.ca!, servername: host("pub"), agent: false });
    req.on("response", (res) => {
      const parts: string[] = [];
      res.setEncoding("utf8");
      res.on("data", (d: string) => {
        parts.push(d);
        if (parts.length === 1) release!();
      });
      res.on("end", () => resolve(parts));
    });
    req.on("error", reject);
    req.end();
  });
  assert.deepEqual(got, ["first;", "second"]);
  const big = "x".repeat(300_000);
  const echo = await new Promise<string>((resolve, reject) => {
    const req = httpsRequest({ host: at.addr, port: at.port, path: "/echo", method: "POST", headers: { host: host("pub") }, ca: at.ca!, servername: host("pub"), agent: false });
    req.on("response", (res) => {
      let b = "";
      res.setEncoding("utf8").on("data", (d: string) => (b += d)).on("end", () => resolve(b));
    });
    req.on("error", reject);
    req.end(big);
  });
  assert.equal(echo.length, big.length);
});

test("a guest's answer cut mid-body cuts the client's, and the operator's log says which machine", async () => {
  const outcome = await new Promise<string>((resolve) => {
    const req = httpsRequest({ host: at.addr, port: at.port, path: "/cut", headers: { host: host("pub") }, ca: at.ca!, servername: host("pub"), agent: false });
    req.on("response", (res) => {
      res.on("data", () => undefined);
      res.on("end", () => resolve(`complete (${res.statusCode})`));
      res.on("error", (e) => resolve(`cut: ${e.message}`));
    });
    req.on("error", (e) => resolve(`request error: ${e.message}`));
    req.end();
  });
  assert.equal(outcome, "cut: aborted");
  const w = warned.find((a) => a[1] === "proxy: the guest's answer broke off");
  assert.ok(w, `warned: ${JSON.stringify(warned)}`);
  assert.deepEqual({ ...(w[0] as object), err: undefined }, { machine: "vm_01J9Z6Y8W2V4T0S5R3Q1P7N9M9", port: upPort, err: undefined });
});

test("a WebSocket upgrade is piped raw; a private one needs the token; the token is not forwarded", async () => {
  const h = host(`${upPort}-${ID.toLowerCase()}`);
  await assert.rejects(WsClient.connect(at.addr, at.port, 5000, { tls: { ca: at.ca!, servername: h }, hostHeader: h }), /handshake answered HTTP\/1\.1 401/);
  const ws = await WsClient.connect(at.addr, at.port, 5000, { tls: { ca: at.ca!, servername: h }, hostHeader: h, headers: { "X-Hyperfleet-Token": TOKEN } });
  try {
    ws.send(Op.text, "ping-1");
    assert.deepEqual((await ws.next(5000)).payload.toString(), "ping-1");
    assert.equal(seen.at(-1)!["x-hyperfleet-token"], undefined);
    assert.equal(seen.at(-1)!.upgrade, "websocket");
  } finally {
    ws.destroy();
  }
});

test("a request head over the bound is 431; the connection closes", async () => {
  const r = await viaProxy(at, host("pub"), "/", { "x-big": "a".repeat(20_000) }).catch((e: Error) => e);
  assert.ok(!(r instanceof Error), String(r));
  assert.equal(r.status, 431);
});

test("a guest that never accepts: 504 after the 5 s connect bound, not a hang", { timeout: 30_000 }, async () => {
  // A listener that never accepts, its backlog filled: the kernel drops further SYNs, as a guest
  // whose service is wedged does (python: Node always accepts).
  const py = spawn("python3", ["-c", "import socket,sys,time\ns=socket.socket()\ns.bind(('127.0.0.1',0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(60)"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      py.stdout.once("data", (d: Buffer) => resolve(Number(d.toString().trim())));
      py.once("exit", (c) => reject(new Error(`python3 exited ${c}`)));
    });
    const fillers = [0, 1, 2].map(() => tcpConnect(port, "127.0.0.1").on("error", () => undefined));
    await new Promise((r) => setTimeout(r, 300));
    const id = "vm_01J9Z6Y8W2V4T0S5R3Q1P7N9MB";
    machines.set(id, { id, name: "wedged", status: "running", ip: "127.0.0.1", token: null, services: [{ port, visibility: "public" }] });
    const t0 = Date.now();
    const r = await viaProxy(at, host("wedged"), "/", {}, 20_000);
    const took = Date.now() - t0;
    assert.deepEqual([r.status, r.headers["x-hyperfleet-error"]], [504, "PROXY_UPSTREAM_TIMEOUT"]);
    assert.ok(took >= 4500 && took < 15_000, `answered after ${took} ms`);
    for (const f of fillers) f.destroy();
  } finally {
    py.kill("SIGKILL");
  }
});

test("past HYPERFLEET_PROXY_MAX_CONNECTIONS a new connection is closed at once; an open WebSocket counts", async () => {
  const dir2 = await mkdtemp(join(tmpdir(), "hft-proxy-max-"));
  const cert = await localCaCertificate(dir2, D);
  const directory: ProxyDirectory = { byId: async (id) => machines.get(id), byName: async (n) => [...machines.values()].filter((m) => m.name.toLowerCase() === n) };
  const small = await ProxyServer.listen({ host: "127.0.0.1", port: 0, domain: D, tls: { cert: cert.cert, key: cert.key }, maxConnections: 1, maxHeaderBytes: 16384, directory, log: silent });
  const at2 = { ...at, port: small.port, ca: await readFile(cert.caPath!) };
  try {
    const h = host(`${upPort}-vm_01j9z6y8w2v4t0s5r3q1p7n9m9`);
    const ws = await WsClient.connect(at2.addr, at2.port, 5000, { tls: { ca: at2.ca, servername: h }, hostHeader: h });
    await assert.rejects(viaProxy(at2, host("pub"), "/", {}, 5000), /socket hang up|ECONNRESET|closed|disconnected before secure TLS/);
    ws.destroy();
    await new Promise((r) => setTimeout(r, 200));
    assert.equal((await viaProxy(at2, host("pub"))).status, 200);
  } finally {
    await small.close();
    await rm(dir2, { recursive: true, force: true });
  }
});
