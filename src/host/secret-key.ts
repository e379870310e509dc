/**
 * The key that seals machine secrets: HYPERFLEET_SECRET_KEY (checked by config), else
 * `<dataDir>/secret.key`, generated on first use. The file is written 0600 under a temporary name
 * and linked to its final one, which fails if it exists: two daemons starting at once on one data
 * dir end up with the same key, and a reader never sees a half-written file.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, linkSync, readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { HyperfleetError } from "../core/errors.js";
import { SECRET_KEY_BYTES } from "./secret-box.js";

export const SECRET_KEY_FILE = "secret.key";

/** @param fromEnv HYPERFLEET_SECRET_KEY as config normalised it (64 hex digits), or null to use the key file. */
export function loadSecretKey(fromEnv: string | null, dataDir: string): { key: Buffer; source: "env" | "file" | "generated" } {
  if (fromEnv !== null) return { key: Buffer.from(fromEnv, "hex"), source: "env" };
  const path = join(dataDir, SECRET_KEY_FILE);
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  writeFileSync(tmp, randomBytes(SECRET_KEY_BYTES).toString("hex") + "\n", { mode: 0o600, flag: "wx" });
  let created = false;
  try {
    linkSync(tmp, path);
    created = true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
  } finally {
    unlinkSync(tmp);
  }
  // An existing file a user copied in with looser permissions is made private again.
  chmodSync(path, 0o600);
  const text = readFileSync(path, "utf8").trim();
  if (!/^[0-9a-fA-F]{64}$/.test(text)) {
    throw new HyperfleetError("CONFIG_INVALID", `${path} must hold the secret key as 64 hex digits (32 bytes); restore the file the machines' secrets were sealed with, or delete it and set every machine's secrets again`, {
      details: { field: "HYPERFLEET_SECRET_KEY" },
    });
  }
  return { key: Buffer.from(text, "hex"), source: created ? "generated" : "file" };
}
