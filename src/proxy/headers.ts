/**
 * Headers across the proxy (pure): hop-by-hop ones stay on their hop (RFC 9110 7.6.1), the access
 * token never goes upstream, and X-Forwarded-For/-Proto/-Host tell the guest who asked.
 */
import { TOKEN_COOKIE, TOKEN_HEADER, withoutCookie } from "./auth.js";

const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"]);
const FORWARDED = new Set(["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded"]);

export interface Forwarding {
  /** The client's address as the proxy saw it. */
  clientIp: string;
  proto: "http" | "https";
  host: string;
  /** A WebSocket handshake keeps `Connection: upgrade` and `Upgrade`. */
  upgrade: boolean;
}

/**
 * The request's raw headers (name, value, name, value, ...) as sent upstream, a flat list again.
 * The client's own X-Forwarded-* are dropped rather than appended to: the proxy is the edge, and a
 * client must not be able to claim another address to the guest.
 */
export function upstreamRequestHeaders(raw: readonly string[], f: Forwarding): string[] {
  const out: string[] = [];
  // Headers named in Connection are hop-by-hop too.
  const named = new Set<string>();
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() === "connection") for (const t of raw[i + 1]!.split(",")) named.add(t.trim().toLowerCase());
  }
  let cookies: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    const value = raw[i + 1]!;
    if (HOP_BY_HOP.has(lower) || named.has(lower) || FORWARDED.has(lower) || lower === TOKEN_HEADER) continue;
    if (lower === "cookie") {
      cookies.push(value);
      continue;
    }
    out.push(name, value);
  }
  cookies = cookies.map((c) => withoutCookie(c, TOKEN_COOKIE)).filter((c): c is string => c !== undefined);
  if (cookies.length > 0) out.push("Cookie", cookies.join("; "));
  if (f.upgrade) out.push("Connection", "Upgrade", "Upgrade", upgradeOf(raw) ?? "websocket");
  out.push("X-Forwarded-For", f.clientIp, "X-Forwarded-Proto", f.proto, "X-Forwarded-Host", f.host);
  return out;
}

function upgradeOf(raw: readonly string[]): string | undefined {
  for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i]!.toLowerCase() === "upgrade") return raw[i + 1];
  return undefined;
}

/**
 * The upstream's raw response headers without hop-by-hop ones (Node frames the body itself), and
 * without Content-Length when the proxy read the body by other framing (`dropLength`).
 */
export function downstreamResponseHeaders(raw: readonly string[], dropLength = false): string[] {
  const named = new Set<string>();
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() === "connection") for (const t of raw[i + 1]!.split(",")) named.add(t.trim().toLowerCase());
  }
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const lower = raw[i]!.toLowerCase();
    if (HOP_BY_HOP.has(lower) || named.has(lower) || (dropLength && lower === "content-length")) continue;
    out.push(raw[i]!, raw[i + 1]!);
  }
  return out;
}

/** A request head as bytes, for the upgrade path, where the proxy writes to the guest's socket itself. */
export function requestHead(method: string, target: string, headers: readonly string[]): string {
  let head = `${method} ${target} HTTP/1.1\r\n`;
  for (let i = 0; i + 1 < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
  return `${head}\r\n`;
}
