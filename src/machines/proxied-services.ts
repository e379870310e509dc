/**
 * A create request's `services` (issue 14, per-VM URLs) and the machine's access token. The proxy
 * reaches a guest by its network address, so services need a network; each port once.
 */
import { randomBytes } from "node:crypto";
import { HyperfleetError } from "../core/errors.js";
import type { ProxiedService } from "../core/machine.js";

/** Where a machine's access token is kept (the store's ProxyTargetRepository). */
export interface AccessTokenStore {
  /** undefined: no such machine. */
  token(id: string): Promise<string | null | undefined>;
  /** false: no such machine. */
  setToken(id: string, token: string): Promise<boolean>;
}

/** The services as recorded; SERVICE_NEEDS_NETWORK or INVALID_ARGUMENT (with `field`) otherwise. */
export function checkServices(services: readonly ProxiedService[] | undefined, hasNetwork: boolean): ProxiedService[] {
  if (services === undefined || services.length === 0) return [];
  if (!hasNetwork) {
    throw new HyperfleetError("SERVICE_NEEDS_NETWORK", 'services: the proxy reaches a machine by its network address, and this machine has none; add "network": {} or drop services', {
      details: { field: "services" },
    });
  }
  const seen = new Set<number>();
  services.forEach((s, i) => {
    if (seen.has(s.port)) throw new HyperfleetError("INVALID_ARGUMENT", `services[${i}].port: ${s.port} is listed twice`, { details: { field: `services[${i}].port` } });
    seen.add(s.port);
  });
  return services.map((s) => ({ port: s.port, visibility: s.visibility }));
}

/** 256 random bits, URL- and cookie-safe. */
export function newAccessToken(): string {
  return randomBytes(32).toString("base64url");
}
