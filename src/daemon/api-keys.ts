/**
 * Which API keys the daemon accepts: the ones in HYPERFLEET_API_KEY when set; otherwise the keys
 * stored (as sha256) by an earlier start; otherwise a new key, generated now, stored hashed and
 * printed once (it cannot be shown again: only its hash is kept).
 */
import { ulid } from "ulid";
import { ApiKeyVerifier, generateApiKey, hashApiKey } from "../api/auth.js";
import type { Config } from "../config/config.js";
import type { ApiKeyRepository } from "../store/api-key-repository.js";

export interface ApiKeySetup {
  /** null when auth is off. */
  verifier: ApiKeyVerifier | null;
  source: "disabled" | "environment" | "store" | "generated";
}

export async function setupApiKeys(
  auth: Config["auth"],
  keys: ApiKeyRepository,
  print: (text: string) => void,
  now: () => Date = () => new Date(),
): Promise<ApiKeySetup> {
  if (!auth.enabled) return { verifier: null, source: "disabled" };
  if (auth.apiKeys.length > 0) return { verifier: new ApiKeyVerifier(auth.apiKeys.map(hashApiKey)), source: "environment" };
  const stored = await keys.list();
  if (stored.length > 0) return { verifier: new ApiKeyVerifier(stored.map((k) => k.keyHash)), source: "store" };

  const key = generateApiKey();
  const hash = hashApiKey(key);
  await keys.insert({ id: `key_${ulid()}`, keyHash: hash, source: "generated", createdAt: now() });
  print(
    [
      "",
      "  Hyperfleet generated an API key. It is shown only this once; only its hash is stored:",
      "",
      `    ${key}`,
      "",
      "  Use it as 'Authorization: Bearer <key>', or set HYPERFLEET_API_KEY to choose your own.",
      "",
    ].join("\n"),
  );
  return { verifier: new ApiKeyVerifier([hash]), source: "generated" };
}
