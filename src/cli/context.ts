/**
 * What every verb gets: the streams it prints to and the client, built on first use from the
 * environment (HYPERFLEET_URL, HYPERFLEET_API_KEY) or else the config file.
 */
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import type { Readable, Writable } from "node:stream";
import { HyperfleetError } from "../core/errors.js";
import { clientEnvironment, HyperfleetClient } from "../sdk/index.js";

export interface Streams {
  out: Writable & { isTTY?: boolean };
  err: Writable & { isTTY?: boolean };
  stdin: Readable;
}

export interface Ctx extends Streams {
  client(): HyperfleetClient;
}

/** `{"url": "...", "api_key": "..."}`; the environment wins over it, field by field. */
export const configPath = (): string => join(homedir(), ".config", "hyperfleet", "config.json");

function readConfigFile(path: string): { url?: string; apiKey?: string } {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return {};
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new HyperfleetError("CONFIG_INVALID", `${path} is not JSON; expected {"url": "http://127.0.0.1:3000", "api_key": "..."}`);
  }
  const o = (v ?? {}) as Record<string, unknown>;
  for (const k of ["url", "api_key"]) {
    if (o[k] !== undefined && typeof o[k] !== "string") throw new HyperfleetError("CONFIG_INVALID", `${path}: "${k}" must be a string`);
  }
  return { ...(typeof o.url === "string" && { url: o.url }), ...(typeof o.api_key === "string" && { apiKey: o.api_key }) };
}

export function context(streams: Streams): Ctx {
  let client: HyperfleetClient | null = null;
  return {
    ...streams,
    client() {
      if (client === null) {
        const env = clientEnvironment();
        const file = env.url !== undefined && env.apiKey !== undefined ? {} : readConfigFile(configPath());
        const url = env.url ?? file.url;
        const apiKey = env.apiKey ?? file.apiKey;
        client = new HyperfleetClient({ ...(url !== undefined && { url }), ...(apiKey !== undefined && { apiKey }) });
      }
      return client;
    },
  };
}
