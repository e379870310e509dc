/**
 * Machine secrets at rest: AES-256-GCM with a random 96-bit nonce per value. The additional data
 * binds each ciphertext to its machine and name, so a value copied to another machine's row (or
 * under another name) fails to open instead of being delivered there. Sealed form:
 * `v1.<base64(nonce | ciphertext | tag)>`.
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { HyperfleetError } from "../core/errors.js";

export const SECRET_KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const PREFIX = "v1.";

function aad(machineId: string, name: string): Buffer {
  return Buffer.from(`hyperfleet-secret-v1\0${machineId}\0${name}`, "utf8");
}

function checkKey(key: Buffer): void {
  if (key.length !== SECRET_KEY_BYTES) throw new HyperfleetError("INTERNAL", `a secret key is ${SECRET_KEY_BYTES} bytes, got ${key.length}`);
}

export function sealSecret(key: Buffer, machineId: string, name: string, value: string): string {
  checkKey(key);
  const nonce = randomBytes(NONCE_BYTES);
  const c = createCipheriv("aes-256-gcm", key, nonce, { authTagLength: TAG_BYTES });
  c.setAAD(aad(machineId, name));
  const body = Buffer.concat([c.update(value, "utf8"), c.final()]);
  return PREFIX + Buffer.concat([nonce, body, c.getAuthTag()]).toString("base64");
}

/**
 * The value, or SECRETS_UNREADABLE when it does not open: sealed under another key (the key
 * changed), for another machine or name, or altered. The message never holds the value.
 */
export function openSecret(key: Buffer, machineId: string, name: string, sealed: string): string {
  checkKey(key);
  const raw = sealed.startsWith(PREFIX) ? Buffer.from(sealed.slice(PREFIX.length), "base64") : Buffer.alloc(0);
  if (raw.length < NONCE_BYTES + TAG_BYTES) throw unreadable(machineId, name);
  try {
    const d = createDecipheriv("aes-256-gcm", key, raw.subarray(0, NONCE_BYTES), { authTagLength: TAG_BYTES });
    d.setAAD(aad(machineId, name));
    d.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
    return Buffer.concat([d.update(raw.subarray(NONCE_BYTES, raw.length - TAG_BYTES)), d.final()]).toString("utf8");
  } catch (e) {
    throw unreadable(machineId, name, e);
  }
}

function unreadable(machineId: string, name: string, cause?: unknown): HyperfleetError {
  return new HyperfleetError(
    "SECRETS_UNREADABLE",
    `secret ${name} of machine ${machineId} does not decrypt with this daemon's key (HYPERFLEET_SECRET_KEY or <data dir>/secret.key changed, or the store was altered): restore the key, or set the machine's secrets again (PUT /machines/${machineId}/secrets)`,
    { cause, details: { field: "secrets", name } },
  );
}
