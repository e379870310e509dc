/** The proxy's own answers: a small HTML page with the code also in X-Hyperfleet-Error (pure). */
import type { Refusal } from "./directory.js";

const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function pageHtml(r: Refusal): string {
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>${r.status} ${escape(r.title)}</title></head>
<body><h1>${r.status} ${escape(r.title)}</h1><p>${escape(r.message)}</p><p><small>${r.code} &middot; Hyperfleet proxy</small></p></body></html>
`;
}

export function pageHeaders(r: Refusal, body: string): Record<string, string> {
  return {
    "content-type": "text/html; charset=utf-8",
    "content-length": String(Buffer.byteLength(body)),
    "cache-control": "no-store",
    "x-hyperfleet-error": r.code,
  };
}

/** The whole answer as bytes, for a socket that never became an HTTP response (an upgrade). */
export function rawPage(r: Refusal): string {
  const body = pageHtml(r);
  const head = Object.entries({ ...pageHeaders(r, body), connection: "close" })
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join("");
  return `HTTP/1.1 ${r.status} ${r.title}\r\n${head}\r\n${body}`;
}

export const UNREACHABLE = (who: string, port: number, why: string): Refusal => ({
  status: 502,
  code: "PROXY_UPSTREAM_UNREACHABLE",
  title: "Bad gateway",
  message: `machine ${who} did not accept a connection on port ${port} (${why}); is the service listening?`,
});

export const INVALID_ANSWER = (who: string, port: number, why: string): Refusal => ({
  status: 502,
  code: "PROXY_UPSTREAM_INVALID_RESPONSE",
  title: "Bad gateway",
  message: `machine ${who} answered on port ${port} with something the proxy cannot pass on as HTTP/1.1: ${why}`,
});

export const TIMED_OUT = (who: string, port: number, ms: number): Refusal => ({
  status: 504,
  code: "PROXY_UPSTREAM_TIMEOUT",
  title: "Gateway timeout",
  message: `machine ${who} did not accept a connection on port ${port} within ${ms / 1000} s`,
});

export const UNAUTHORIZED = (reason: string): Refusal => ({ status: 401, code: "UNAUTHENTICATED", title: "Unauthorized", message: reason });
