/**
 * What an in-process Machine (src/embed) takes from the environment: the daemon's registry settings,
 * so an `imageRef` is pulled the way the daemon would pull it (plain-HTTP registries, mirrors, the
 * agent baked into the disk). Nothing else: a library user configures the rest in code.
 */
import { err, ok, type Result } from "../core/result.js";
import { HyperfleetError } from "../core/errors.js";
import { EnvReader, type Env } from "./env-reader.js";
import { defaultAgentBinary, readMirrors, readRegistryHosts } from "./registries.js";

export interface LibraryImageConfig {
  /** HYPERFLEET_INSECURE_REGISTRIES. */
  insecureRegistries: string[];
  /** HYPERFLEET_REGISTRY_MIRRORS. */
  mirrors: Record<string, string[]>;
  /** HYPERFLEET_AGENT_BINARY (default: this checkout's guest/build/hf-agent). */
  agentBinary: string;
  /** HYPERFLEET_OCI_MAX_CACHE_SIZE. */
  maxCacheSize: number;
}

export function loadLibraryImageConfig(env: Env = process.env): Result<LibraryImageConfig> {
  const r = new EnvReader(env);
  const c: LibraryImageConfig = {
    insecureRegistries: readRegistryHosts(r, "HYPERFLEET_INSECURE_REGISTRIES"),
    mirrors: readMirrors(r, "HYPERFLEET_REGISTRY_MIRRORS"),
    agentBinary: r.path("HYPERFLEET_AGENT_BINARY", defaultAgentBinary()),
    maxCacheSize: r.int("HYPERFLEET_OCI_MAX_CACHE_SIZE", 10_737_418_240, 0, Number.MAX_SAFE_INTEGER, "bytes"),
  };
  if (r.problems.length === 0) return ok(c);
  return err(new HyperfleetError("CONFIG_INVALID", `invalid configuration:\n${r.problems.map((p) => `  ${p.variable} ${p.message}`).join("\n")}`, { details: { field: r.problems[0]?.variable, problems: r.problems } }));
}
