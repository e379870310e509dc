/**
 * A request's Host -> which machine and port it names (pure). Under the proxy's domain, one label:
 * `<port>-<id>` or `<port>-<name>` (that port), `<id>` or `<name>` (the machine's first service).
 * DNS names are case-insensitive, so the label is read lowercase and ids are matched in any case.
 */

/** What a host names; `port` null: the machine's default (first) service. */
export type HostRoute = { kind: "id"; id: string; port: number | null } | { kind: "name"; name: string; port: number | null };

/** Our machine ids: `vm_` and a ULID (Crockford base32, stored uppercase). */
const ID = /^vm_[0-9a-hjkmnp-tv-z]{26}$/;
const PORT_LABEL = /^(\d{1,5})-(.+)$/;

/** The host without its `:port` (and without the brackets of an IPv6 literal), lowercase. */
export function hostName(host: string): string {
  const h = host.trim().toLowerCase();
  if (h.startsWith("[")) return h.slice(0, h.indexOf("]") + 1);
  const colon = h.lastIndexOf(":");
  return (colon < 0 ? h : h.slice(0, colon)).replace(/\.$/, "");
}

/**
 * undefined: not one of ours (another domain, more than one label below it, a port outside
 * 1-65535). `domain` is lowercase without dots around it (src/config/proxy.ts).
 *
 * @example
 * parseHost("8080-vm_01j9z6y8w2v4t0s5r3q1p7n9m8.hf.localhost:8443", "hf.localhost")
 * // -> { kind: "id", id: "vm_01J9Z6Y8W2V4T0S5R3Q1P7N9M8", port: 8080 }
 */
export function parseHost(host: string | undefined, domain: string): HostRoute | undefined {
  if (host === undefined) return undefined;
  const name = hostName(host);
  const suffix = `.${domain}`;
  if (!name.endsWith(suffix)) return undefined;
  const label = name.slice(0, -suffix.length);
  if (label === "" || label.includes(".") || label.length > 63) return undefined;
  const m = PORT_LABEL.exec(label);
  let port: number | null = null;
  let rest = label;
  if (m) {
    port = Number(m[1]);
    if (port < 1 || port > 65535) return undefined;
    rest = m[2]!;
  }
  if (ID.test(rest)) return { kind: "id", id: `vm_${rest.slice(3).toUpperCase()}`, port };
  return { kind: "name", name: rest, port };
}
