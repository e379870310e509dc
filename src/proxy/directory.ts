/**
 * The port the proxy looks machines up through (the daemon adapts the store to it), and the pure
 * routing decision: which upstream a request goes to, or which page answers it instead.
 */
import type { ProxiedService } from "../core/machine.js";
import type { HostRoute } from "./host.js";

/** What the proxy needs of a machine. */
export interface ProxyTarget {
  id: string;
  name: string;
  status: string;
  /** Its `network.ip` (the daemon reaches guests by it, ADR 0008); null without a network. */
  ip: string | null;
  services: readonly ProxiedService[];
  /** Private services need it; null: none set (then nothing private is served). */
  token: string | null;
}

export interface ProxyDirectory {
  byId(id: string): Promise<ProxyTarget | undefined>;
  /** Every machine whose name equals `name` ignoring ASCII case (at most two are needed). */
  byName(name: string): Promise<readonly ProxyTarget[]>;
}

/** A page instead of the upstream; `code` is one of core's error codes (X-Hyperfleet-Error). */
export interface Refusal {
  status: number;
  code: "MACHINE_NOT_FOUND" | "MACHINE_NOT_RUNNING" | "UNAUTHENTICATED" | "PROXY_UPSTREAM_UNREACHABLE" | "PROXY_UPSTREAM_TIMEOUT";
  title: string;
  message: string;
}

export type Route = { ok: true; target: ProxyTarget; service: ProxiedService; upstream: { host: string; port: number } } | { ok: false; refusal: Refusal };

const notFound = (message: string): Route => ({ ok: false, refusal: { status: 404, code: "MACHINE_NOT_FOUND", title: "Not found", message } });

/** Looks the host's machine up and picks its service; authentication is the caller's next step. */
export async function route(host: HostRoute | undefined, dir: ProxyDirectory, hostHeader: string): Promise<Route> {
  if (host === undefined) return notFound(`${hostHeader || "(no Host header)"} is not a machine URL of this proxy`);
  let target: ProxyTarget | undefined;
  if (host.kind === "id") {
    target = await dir.byId(host.id);
  } else {
    const found = await dir.byName(host.name);
    // Names are unique as written but not ignoring case: a URL cannot tell `App` from `app`.
    if (found.length > 1) return notFound(`more than one machine is named '${host.name}' ignoring case; use its <port>-<id> URL`);
    target = found[0];
  }
  if (target === undefined) return notFound(`no machine ${host.kind === "id" ? host.id : `named '${host.name}'`}`);
  return routeTo(target, host.port);
}

/** Pure: the target's service on `port` (null: its first), if it is up. */
export function routeTo(target: ProxyTarget, port: number | null): Route {
  const service = port === null ? target.services[0] : target.services.find((s) => s.port === port);
  if (service === undefined) {
    return notFound(port === null ? `machine ${target.name} (${target.id}) serves no port through the proxy` : `machine ${target.name} (${target.id}) serves no port ${port} through the proxy`);
  }
  if (target.status !== "running" || target.ip === null) {
    return {
      ok: false,
      refusal: { status: 502, code: "MACHINE_NOT_RUNNING", title: "Machine not running", message: `machine ${target.name} (${target.id}) is ${target.status}; start it and retry` },
    };
  }
  return { ok: true, target, service, upstream: { host: target.ip, port: service.port } };
}
