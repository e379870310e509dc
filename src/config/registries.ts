/**
 * Parsers for the registry variables (HYPERFLEET_INSECURE_REGISTRIES, HYPERFLEET_REGISTRY_MIRRORS)
 * and the default path of the guest agent built from this checkout. Problems are collected by the
 * EnvReader like every other variable's.
 */
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { EnvReader } from "./env-reader.js";

/** `host`, `host:port`, `[v6]:port`, as registries are named in image references. */
const REGISTRY_HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:]+\])(?::\d{1,5})?$/;
/** A mirror may add a path prefix (`mirror.local:5000/dockerhub`), as registries.conf allows. */
const MIRROR = /^[^/\s]+(?:\/[A-Za-z0-9._/-]+)?$/;

export function isRegistryHost(s: string): boolean {
  return REGISTRY_HOST.test(s);
}

/** Comma-separated `host[:port]` list; each must look like a registry host. */
export function readRegistryHosts(r: EnvReader, name: string): string[] {
  const hosts = r.list(name);
  for (const h of hosts) {
    if (!isRegistryHost(h)) r.problem(name, `'${h}' is not a registry host[:port] (e.g. 127.0.0.1:5000)`);
  }
  return hosts;
}

/**
 * `registry=mirror` pairs separated by commas; a registry may appear several times, and its
 * mirrors are tried in the order given, before the registry itself.
 *
 * @example readMirrors(r, "X") // X="docker.io=mirror.local:5000,docker.io=m2.local" -> { "docker.io": ["mirror.local:5000", "m2.local"] }
 */
export function readMirrors(r: EnvReader, name: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const pair of r.list(name)) {
    const eq = pair.indexOf("=");
    const registry = pair.slice(0, eq).trim();
    const mirror = pair.slice(eq + 1).trim();
    if (eq <= 0 || !isRegistryHost(registry) || !MIRROR.test(mirror) || !isRegistryHost(mirror.split("/")[0] ?? "")) {
      r.problem(name, `'${pair}' must be registry=mirror, e.g. docker.io=mirror.local:5000`);
      continue;
    }
    (out[registry] ??= []).push(mirror);
  }
  return out;
}

/**
 * `guest/build/hf-agent` of the checkout this module belongs to: the first ancestor directory
 * holding package.json (src/config under tsx, dist/src/config when built), like `npm run setup`
 * builds it. Falls back to the working directory.
 */
export function defaultAgentBinary(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, "package.json"))) return join(dir, "guest", "build", "hf-agent");
    const up = dirname(dir);
    if (up === dir) return resolve("guest/build/hf-agent");
    dir = up;
  }
}
