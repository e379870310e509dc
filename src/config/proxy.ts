/**
 * The per-VM URL proxy (issue 14; docs/agents.md "Per-VM URLs"): where it listens, the domain its
 * hosts are under, and where its certificate comes from. Unset HYPERFLEET_PROXY_ADDR: no proxy.
 */
import { isIP } from "node:net";
import { join } from "node:path";
import type { EnvReader } from "./env-reader.js";

export type ProxyTls =
  /** A certificate (a wildcard for `*.<domain>`) and its key, from the operator. */
  | { readonly mode: "configured"; readonly certPath: string; readonly keyPath: string }
  /** A local CA and a `*.<domain>` leaf, generated once in `dir`. */
  | { readonly mode: "generated"; readonly dir: string }
  /** Plain HTTP, behind another TLS terminator. */
  | { readonly mode: "off" };

export interface ProxyConfig {
  readonly host: string;
  readonly port: number;
  /** Lowercase, no leading or trailing dot. */
  readonly domain: string;
  readonly tls: ProxyTls;
  /** Client connections open at once (upgraded WebSockets included); more are refused. */
  readonly maxConnections: number;
  /** Bytes of a request's head (request line and headers); more is 431. */
  readonly maxHeaderBytes: number;
}

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export function readProxy(r: EnvReader, dataDir: string): ProxyConfig | null {
  const addr = r.raw("HYPERFLEET_PROXY_ADDR");
  const domain = r.string("HYPERFLEET_DOMAIN", "hf.localhost").toLowerCase().replace(/^\.+|\.+$/g, "");
  if (!domain.split(".").every((l) => LABEL.test(l)) || domain.length > 200) {
    r.problem("HYPERFLEET_DOMAIN", `must be a DNS name like hf.example.com (labels of letters, digits and '-'), got '${domain}'`);
  }
  const cert = r.path("HYPERFLEET_PROXY_TLS_CERT", null);
  const key = r.path("HYPERFLEET_PROXY_TLS_KEY", null);
  if ((cert === null) !== (key === null)) r.problem(cert === null ? "HYPERFLEET_PROXY_TLS_CERT" : "HYPERFLEET_PROXY_TLS_KEY", "must be set together with its pair (HYPERFLEET_PROXY_TLS_CERT and HYPERFLEET_PROXY_TLS_KEY)");
  const tlsOn = r.bool("HYPERFLEET_PROXY_TLS", true);
  if (!tlsOn && cert !== null) r.problem("HYPERFLEET_PROXY_TLS", "is off, but HYPERFLEET_PROXY_TLS_CERT is set: drop one of them");
  const maxConnections = r.int("HYPERFLEET_PROXY_MAX_CONNECTIONS", 4096, 1, 1_000_000);
  const maxHeaderBytes = r.int("HYPERFLEET_PROXY_MAX_HEADER_BYTES", 16_384, 1024, 1_048_576, "bytes");
  if (addr === undefined) return null;

  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(addr);
  const host = m?.[1] ?? m?.[2] ?? "";
  const port = Number(m?.[3]);
  if (!m || port > 65535 || (isIP(host) === 0 && !/^[A-Za-z0-9.-]+$/.test(host))) {
    r.problem("HYPERFLEET_PROXY_ADDR", `must be host:port (e.g. 127.0.0.1:8443, [::1]:443, 0.0.0.0:443), got '${addr}'`);
  }
  const tls: ProxyTls = !tlsOn ? { mode: "off" } : cert !== null && key !== null ? { mode: "configured", certPath: cert, keyPath: key } : { mode: "generated", dir: join(dataDir, "proxy") };
  return { host, port, domain, tls, maxConnections, maxHeaderBytes };
}
