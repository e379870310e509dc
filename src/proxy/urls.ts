/**
 * A machine's proxy URLs (pure): `<scheme>://<port>-<id>.<domain>[:<proxy port>]` per service, and
 * `<scheme>://<name>.<domain>[:<proxy port>]` for its first one when the name can be a host label.
 */
import type { MachineView, ProxiedService } from "../core/machine.js";
import { parseHost } from "./host.js";

export interface UrlBase {
  scheme: "http" | "https";
  domain: string;
  /** The port clients reach the proxy on (omitted from URLs when it is the scheme's default). */
  port: number;
}

/** What a machine's view shows of the proxy; nameUrl null: no service, or an unroutable name. */
export type MachineUrls = Pick<MachineView, "urls" | "nameUrl">;

export function machineUrls(base: UrlBase, m: { id: string; name: string; services: readonly ProxiedService[] }): MachineUrls {
  const origin = (label: string) => `${base.scheme}://${label}.${base.domain}${base.port === (base.scheme === "https" ? 443 : 80) ? "" : `:${base.port}`}`;
  const urls = m.services.map((s) => ({ port: s.port, visibility: s.visibility, url: origin(`${s.port}-${m.id.toLowerCase()}`) }));
  // Listed only if the proxy reads it back as this name for the default service: a name with a
  // '.', one shaped like `<port>-...`, or like a machine id would route elsewhere or nowhere.
  const label = m.name.toLowerCase();
  const back = parseHost(`${label}.${base.domain}`, base.domain);
  const routable = back?.kind === "name" && back.port === null && back.name === label;
  return { urls, nameUrl: m.services.length > 0 && routable ? origin(label) : null };
}
