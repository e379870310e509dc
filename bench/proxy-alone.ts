/**
 * The proxy's own cost, without a VM or the daemon: src/proxy/server.ts in this process in front of
 * a Node server on 127.0.0.1, against that server directly, same requests alternating. Separates
 * what the proxy adds from what a busy host's scheduler adds to the VM figures (bench/proxy.ts).
 */
import { Agent as HttpAgent, createServer, request as httpRequest, type IncomingMessage } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import type { AddressInfo } from "node:net";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { localCaCertificate } from "../src/proxy/ca.js";
import { ProxyServer } from "../src/proxy/server.js";
import type { ProxyTarget } from "../src/proxy/directory.js";
import { pct } from "./stats.js";

export interface AloneFigures {
  proxyP50Ms: number;
  directP50Ms: number;
}

export async function proxyAlone(tls: boolean, requests: number): Promise<AloneFigures> {
  const up = createServer((_req, res) => res.end("ok\n"));
  await new Promise<void>((r) => up.listen(0, "127.0.0.1", r));
  const upPort = (up.address() as AddressInfo).port;
  const dir = await mkdtemp(join(tmpdir(), "hf-bench-proxy-alone-"));
  const id = "vm_01J9Z6Y8W2V4T0S5R3Q1P7N9M8";
  const target: ProxyTarget = { id, name: "alone", status: "running", ip: "127.0.0.1", token: null, services: [{ port: upPort, visibility: "public" }] };
  const cert = tls ? await localCaCertificate(dir, "hf.localhost") : null;
  const silent = { info() {}, warn() {}, error() {}, debug() {}, trace() {}, fatal() {}, child: () => silent } as never;
  const proxy = await ProxyServer.listen({
    host: "127.0.0.1",
    port: 0,
    domain: "hf.localhost",
    tls: cert && { cert: cert.cert, key: cert.key },
    maxConnections: 64,
    maxHeaderBytes: 16384,
    directory: { byId: async () => target, byName: async () => [target] },
    log: silent,
  });
  const host = `${upPort}-${id.toLowerCase()}.hf.localhost`;
  const ca = cert ? await readFile(cert.caPath!) : undefined;
  const ha = new HttpAgent({ keepAlive: true });
  const hs = new HttpsAgent({ keepAlive: true, ca });
  const get = (via: boolean) =>
    new Promise<number>((resolve, reject) => {
      const t0 = performance.now();
      const cb = (res: IncomingMessage) => res.resume().on("end", () => resolve(performance.now() - t0));
      const req = !via
        ? httpRequest({ host: "127.0.0.1", port: upPort, path: "/", agent: ha }, cb)
        : tls
          ? httpsRequest({ host: "127.0.0.1", port: proxy.port, path: "/", servername: host, headers: { host }, agent: hs }, cb)
          : httpRequest({ host: "127.0.0.1", port: proxy.port, path: "/", headers: { host }, agent: ha }, cb);
      req.on("error", reject).end();
    });
  try {
    for (let i = 0; i < 50; i++) {
      await get(true);
      await get(false);
    }
    const p: number[] = [];
    const d: number[] = [];
    for (let i = 0; i < requests; i++) {
      p.push(await get(true));
      d.push(await get(false));
    }
    return { proxyP50Ms: pct(p, 50), directP50Ms: pct(d, 50) };
  } finally {
    ha.destroy();
    hs.destroy();
    await proxy.close();
    await new Promise((r) => up.close(r));
    await rm(dir, { recursive: true, force: true });
  }
}
