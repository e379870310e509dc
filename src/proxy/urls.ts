/** A machine's proxy URLs (pure): `<scheme>://<port>-<id>.<domain>[:<proxy port>]` per service. */
import type { ProxiedService, ServiceUrl } from "../core/machine.js";

export interface UrlBase {
  scheme: "http" | "https";
  domain: string;
  /** The port clients reach the proxy on (omitted from URLs when it is the scheme's default). */
  port: number;
}

export function serviceUrls(base: UrlBase, m: { id: string; services: readonly ProxiedService[] }): ServiceUrl[] {
  const dflt = base.scheme === "https" ? 443 : 80;
  const suffix = base.port === dflt ? "" : `:${base.port}`;
  return m.services.map((s) => ({ port: s.port, visibility: s.visibility, url: `${base.scheme}://${s.port}-${m.id.toLowerCase()}.${base.domain}${suffix}` }));
}
