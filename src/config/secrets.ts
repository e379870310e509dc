/**
 * HYPERFLEET_SECRET_KEY: the 32-byte key that seals machine secrets (src/host/secret-box.ts), as 64
 * hex digits or as base64 (44 characters). Unset: `<dataDir>/secret.key`, generated once. A key of
 * any other shape stops the daemon at startup; the message never echoes it.
 */
import type { EnvReader } from "./env-reader.js";

const KEY_BYTES = 32;

/** The key as 64 lowercase hex digits (config is frozen: a Buffer could not be), or null when unset. */
export function readSecretKey(r: EnvReader): string | null {
  const v = r.raw("HYPERFLEET_SECRET_KEY");
  if (v === undefined) return null;
  if (/^[0-9a-fA-F]+$/.test(v) && v.length === KEY_BYTES * 2) return v.toLowerCase();
  if (/^[A-Za-z0-9+/]+={0,2}$/.test(v) && v.length % 4 === 0) {
    const bytes = Buffer.from(v, "base64");
    if (bytes.length === KEY_BYTES) return bytes.toString("hex");
  }
  r.problem(
    "HYPERFLEET_SECRET_KEY",
    `must be ${KEY_BYTES} bytes as 64 hex digits or 44 characters of base64 (got ${v.length} characters; generate one with \`openssl rand -hex 32\`)`,
  );
  return null;
}
