/**
 * Wires the per-VM URL proxy (src/proxy) when HYPERFLEET_PROXY_ADDR is set: its certificate, the
 * store behind its directory port, and the URL builder the machine views use.
 */
import type { Logger } from "pino";
import type { ProxyConfig } from "../config/proxy.js";
import type { ProxyDirectory } from "../proxy/directory.js";
import { configuredCertificate, localCaCertificate, type ProxyCertificate } from "../proxy/ca.js";
import { ProxyServer } from "../proxy/server.js";
import { machineUrls, type MachineUrls } from "../proxy/urls.js";
import type { ProxyTargetRepository } from "../store/proxy-targets.js";

export interface RunningProxy {
  server: ProxyServer;
  urls(m: { id: string; name: string; services: readonly { port: number; visibility: "public" | "private" }[] }): MachineUrls;
  close(): Promise<void>;
}

export async function startProxy(cfg: ProxyConfig, targets: ProxyTargetRepository, log: Logger): Promise<RunningProxy> {
  let cert: ProxyCertificate | null = null;
  if (cfg.tls.mode === "configured") cert = await configuredCertificate(cfg.tls.certPath, cfg.tls.keyPath);
  if (cfg.tls.mode === "generated") cert = await localCaCertificate(cfg.tls.dir, cfg.domain);
  const directory: ProxyDirectory = { byId: (id) => targets.byId(id), byName: (n) => targets.byName(n) };
  const server = await ProxyServer.listen({
    host: cfg.host,
    port: cfg.port,
    domain: cfg.domain,
    tls: cert && { cert: cert.cert, key: cert.key },
    maxConnections: cfg.maxConnections,
    maxHeaderBytes: cfg.maxHeaderBytes,
    directory,
    log,
  });
  const scheme = cert ? "https" : "http";
  log.info({ addr: `${cfg.host}:${server.port}`, domain: cfg.domain, tls: cfg.tls.mode, example: `${scheme}://<port>-<machine id>.${cfg.domain}:${server.port}` }, "proxy listening");
  if (cert?.caPath) {
    log.info(
      { ca: cert.caPath, created: cert.createdCa },
      `proxy certificate signed by Hyperfleet's local CA ${cert.caPath}: trust it with 'curl --cacert ${cert.caPath}', ` +
        `or system-wide: cp ${cert.caPath} /usr/local/share/ca-certificates/hyperfleet.crt && update-ca-certificates (browsers: import it as an authority)`,
    );
  }
  return {
    server,
    urls: (m) => machineUrls({ scheme, domain: cfg.domain, port: server.port }, m),
    close: () => server.close(),
  };
}
