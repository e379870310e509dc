/**
 * Masks query-string values that look like credentials before a URL is logged. Clients put API
 * keys and presigned signatures in query strings (`?token=`, `?X-Amz-Signature=`) although our API
 * takes keys only in the Authorization header; a log must not keep them.
 */

/** Query keys whose values are masked: any key containing one of these words, in any case. */
const SECRET_KEY = /token|key|secret|passw|pwd|auth|signature|sig$|credential|session/i;

export const REDACTED = "[redacted]";

/**
 * @example
 * redactUrl("/machines?status=running&api_key=abc") // "/machines?status=running&api_key=[redacted]"
 */
export function redactUrl(url: string): string {
  const q = url.indexOf("?");
  if (q < 0) return url;
  const query = url
    .slice(q + 1)
    .split("&")
    .map((pair) => {
      const eq = pair.indexOf("=");
      if (eq < 0) return pair;
      const key = pair.slice(0, eq);
      return SECRET_KEY.test(decodeKey(key)) ? `${key}=${REDACTED}` : pair;
    })
    .join("&");
  return `${url.slice(0, q)}?${query}`;
}

/** The key as a client meant it (`api%5Fkey`, `api+key`); undecodable keys are checked raw. */
function decodeKey(key: string): string {
  try {
    return decodeURIComponent(key.replace(/\+/g, " "));
  } catch {
    return key;
  }
}
