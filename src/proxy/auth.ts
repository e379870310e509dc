/**
 * A private service's access check (pure): the machine's token as header `X-Hyperfleet-Token`,
 * cookie `hf_token`, or once as `?hf_token=` (which a browser follows to a cookie and a clean URL).
 * The token never goes upstream: the header, the cookie and the query parameter are removed.
 */
import { createHash, timingSafeEqual } from "node:crypto";

export const TOKEN_HEADER = "x-hyperfleet-token";
export const TOKEN_COOKIE = "hf_token";
export const TOKEN_QUERY = "hf_token";

export type AuthResult =
  | { ok: true }
  /** A valid `?hf_token=`: set the cookie and send the browser to `location`. */
  | { ok: "redirect"; location: string; setCookie: string }
  | { ok: false; reason: string };

/** Compares through fixed-length digests, so neither the length nor a prefix leaks by timing. */
export function tokenMatches(given: string, want: string): boolean {
  const a = createHash("sha256").update(given).digest();
  const b = createHash("sha256").update(want).digest();
  return timingSafeEqual(a, b);
}

/** The values of `name` in Cookie headers (one header, or several joined by Node with "; "). */
export function cookieValues(cookie: string | undefined, name: string): string[] {
  if (!cookie) return [];
  const out: string[] = [];
  for (const part of cookie.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
    out.push(part.slice(eq + 1).trim());
  }
  return out;
}

/** The Cookie header without `name`; undefined when nothing else is left. */
export function withoutCookie(cookie: string | undefined, name: string): string | undefined {
  if (!cookie) return undefined;
  const kept = cookie.split(";").filter((p) => {
    const eq = p.indexOf("=");
    return eq < 0 ? p.trim() !== "" : p.slice(0, eq).trim() !== name;
  });
  const joined = kept.map((p) => p.trim()).join("; ");
  return joined === "" ? undefined : joined;
}

/** The request target without `hf_token` (and without a `?` left empty). */
export function withoutTokenQuery(url: string): string {
  const q = url.indexOf("?");
  if (q < 0) return url;
  const params = url
    .slice(q + 1)
    .split("&")
    .filter((p) => p !== "" && p.split("=")[0] !== TOKEN_QUERY);
  return params.length === 0 ? url.slice(0, q) : `${url.slice(0, q)}?${params.join("&")}`;
}

function queryToken(url: string): string | undefined {
  const q = url.indexOf("?");
  if (q < 0) return undefined;
  for (const p of url.slice(q + 1).split("&")) {
    const eq = p.indexOf("=");
    if ((eq < 0 ? p : p.slice(0, eq)) !== TOKEN_QUERY) continue;
    try {
      return decodeURIComponent(eq < 0 ? "" : p.slice(eq + 1).replace(/\+/g, " "));
    } catch {
      return "";
    }
  }
  return undefined;
}

export interface AuthInput {
  /** `X-Hyperfleet-Token` (Node joins repeated headers with ", "). */
  header: string | undefined;
  cookie: string | undefined;
  url: string;
  /** Whether the cookie may be marked Secure (the proxy speaks TLS). */
  secure: boolean;
}

/**
 * Whether a request may reach a private service of a machine whose token is `want` (null: the
 * machine has none, so nothing private is served). `upgrade`: a WebSocket handshake cannot follow
 * a redirect, so a query token there is checked and simply dropped.
 */
export function checkToken(req: AuthInput, want: string | null, upgrade = false): AuthResult {
  if (want === null) return { ok: false, reason: "this machine has no access token; rotate it (POST /machines/{id}/token/rotate)" };
  const q = queryToken(req.url);
  if (q !== undefined) {
    if (!tokenMatches(q, want)) return { ok: false, reason: "the hf_token in the URL is not this machine's access token" };
    if (upgrade) return { ok: true };
    const cookie = `${TOKEN_COOKIE}=${encodeURIComponent(q)}; Path=/; HttpOnly; SameSite=Lax${req.secure ? "; Secure" : ""}`;
    return { ok: "redirect", location: withoutTokenQuery(req.url), setCookie: cookie };
  }
  if (req.header !== undefined) {
    return tokenMatches(req.header, want) ? { ok: true } : { ok: false, reason: "the X-Hyperfleet-Token header is not this machine's access token" };
  }
  const cookies = cookieValues(req.cookie, TOKEN_COOKIE);
  if (cookies.length === 0) return { ok: false, reason: "this service is private: send the machine's access token (header X-Hyperfleet-Token, cookie hf_token, or ?hf_token= once)" };
  return cookies.some((c) => tokenMatches(decodeURIComponentSafe(c), want)) ? { ok: true } : { ok: false, reason: "the hf_token cookie is not this machine's access token" };
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
