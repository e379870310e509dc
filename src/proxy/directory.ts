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

/**
 * An answer the directory already holds comes back as a value, not a promise: the proxy asks on
 * every request, and a lookup through three async hops cost 60 us of a request's 0.3 ms of work
 * on a warm daemon (bench:proxy, timed inside the proxy).
 */
export type MaybePromise<T> = T | Promise<T>;

export interface ProxyDirectory {
  byId(id: string): MaybePromise<ProxyTarget | undefined>;
  /** Every machine whose name equals `name` ignoring ASCII case (at most two are needed). */
  byName(name: string): MaybePromise<readonly ProxyTarget[]>;
}

/** A page instead of the upstream; `code` is one of core's error codes (X-Hyperfleet-Error). */
export interface Refusal {
  status: number;
  code: "MACHINE_NOT_FOUND" | "MACHINE_NOT_RUNNING" | "UNAUTHENTICATED" | "PROXY_UPSTREAM_UNREACHABLE" | "PROXY_UPSTREAM_TIMEOUT" | "PROXY_UPSTREAM_INVALID_RESPONSE" | "INTERNAL";
  title: string;
  message: string;
}

export type Route = { ok: true; target: ProxyTarget; service: ProxiedService; upstream: { host: string; port: number } } | { ok: false; refusal: Refusal };

const notFound = (message: string): Route => ({ ok: false, refusal: { status: 404, code: "MACHINE_NOT_FOUND", title: "Not found", message } });

/**
 * Looks the host's machine up and picks its service; authentication is the caller's next step.
 * Synchronous when the directory's answer is (see MaybePromise).
 */
export function route(host: HostRoute | undefined, dir: ProxyDirectory, hostHeader: string): MaybePromise<Route> {
  if (host === undefined) return notFound(`${hostHeader || "(no Host header)"} is not a machine URL of this proxy`);
  const found = host.kind === "id" ? dir.byId(host.id) : dir.byName(host.name);
  return found instanceof Promise ? found.then((f) => picked(host, f)) : picked(host, found);
}

function picked(host: HostRoute, found: ProxyTarget | undefined | readonly ProxyTarget[]): Route {
  // Names are unique as written but not ignoring case: a URL cannot tell `App` from `app`.
  if (isList(found) && found.length > 1) return notFound(`more than one machine is named '${host.kind === "name" ? host.name : ""}' ignoring case; use its <port>-<id> URL`);
  const target = isList(found) ? found[0] : found;
  if (target === undefined) return notFound(`no machine ${host.kind === "id" ? host.id : `named '${host.name}'`}`);
  return routeTo(target, host.port);
}

function isList(x: ProxyTarget | undefined | readonly ProxyTarget[]): x is readonly ProxyTarget[] {
  return Array.isArray(x);
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
