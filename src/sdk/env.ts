/** Where a client finds its server when its options do not say: HYPERFLEET_URL and HYPERFLEET_API_KEY. */

export interface ClientEnvironment {
  url?: string;
  apiKey?: string;
}

/** The daemon's default listen address (src/config: PORT 3000 on loopback). */
export const DEFAULT_URL = "http://127.0.0.1:3000";

/**
 * The two variables a client reads (empty counts as unset, as in src/config). Read when a client is
 * built, never at import.
 */
export function clientEnvironment(): ClientEnvironment {
  // eslint-disable-next-line no-restricted-properties -- a client library's documented fallback (src/config/README.md, "Clients"); not the daemon's configuration
  const env = process.env;
  const url = env.HYPERFLEET_URL;
  // The daemon accepts a comma list of keys; a client presents one, the first.
  const apiKey = env.HYPERFLEET_API_KEY?.split(",")[0]?.trim();
  return { ...(url !== undefined && url !== "" && { url }), ...(apiKey !== undefined && apiKey !== "" && { apiKey }) };
}
