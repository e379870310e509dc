/**
 * The OCI image configuration (pure): what a VM built from the image should run by default.
 * Read from the image's config blob (the same JSON for Docker schema 2 and OCI images).
 */
import { HyperfleetError } from "../core/errors.js";
import type { ImageRunConfig } from "../core/machine.js";

/** A port the image declares (`EXPOSE 80/tcp`). */
export interface ExposedPort {
  port: number;
  protocol: "tcp" | "udp" | "sctp";
}

/** The run defaults an image declares. Null means "the image does not say". */
export interface ImageConfig {
  entrypoint: string[];
  cmd: string[];
  /** `Env` as a map; a later duplicate wins, as in Docker. */
  env: Record<string, string>;
  /** Null: the image does not set one (Docker uses `/`). */
  workingDir: string | null;
  /** `name`, `uid`, `name:group` or `uid:gid`; null: root. */
  user: string | null;
  exposedPorts: ExposedPort[];
  labels: Record<string, string>;
  stopSignal: string | null;
}

/** The platform an image config says it was built for. */
export interface ImagePlatform {
  os: string;
  architecture: string;
  variant: string | null;
}

interface RawConfig {
  os?: unknown;
  architecture?: unknown;
  variant?: unknown;
  config?: {
    Entrypoint?: unknown;
    Cmd?: unknown;
    Env?: unknown;
    WorkingDir?: unknown;
    User?: unknown;
    ExposedPorts?: unknown;
    Labels?: unknown;
    StopSignal?: unknown;
  } | null;
}

const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : []);
const optString = (v: unknown): string | null => (typeof v === "string" && v !== "" ? v : null);

function parseEnv(v: unknown): Record<string, string> {
  const env: Record<string, string> = {};
  for (const kv of strings(v)) {
    const eq = kv.indexOf("=");
    // "NAME" without "=" means "unset" in Docker; there is nothing to keep.
    if (eq > 0) env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return env;
}

function parsePorts(v: unknown): ExposedPort[] {
  if (!v || typeof v !== "object") return [];
  const out: ExposedPort[] = [];
  for (const key of Object.keys(v)) {
    const m = /^(\d{1,5})(?:\/(tcp|udp|sctp))?$/i.exec(key);
    const port = Number(m?.[1]);
    if (!m || port < 1 || port > 65535) continue;
    out.push({ port, protocol: (m[2]?.toLowerCase() ?? "tcp") as ExposedPort["protocol"] });
  }
  return out.sort((a, b) => a.port - b.port || a.protocol.localeCompare(b.protocol));
}

function parseLabels(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (v && typeof v === "object") for (const [k, val] of Object.entries(v)) if (typeof val === "string") out[k] = val;
  return out;
}

/** Parses an image config blob. Throws IMAGE_INVALID if it is not a JSON object. */
export function parseImageConfig(raw: Uint8Array | string): { platform: ImagePlatform; config: ImageConfig } {
  let c: RawConfig;
  try {
    c = JSON.parse(typeof raw === "string" ? raw : Buffer.from(raw).toString("utf8")) as RawConfig;
  } catch (e) {
    throw new HyperfleetError("IMAGE_INVALID", "the image config is not valid JSON; the image is corrupt", { cause: e });
  }
  if (!c || typeof c !== "object") throw new HyperfleetError("IMAGE_INVALID", "the image config is not a JSON object; the image is corrupt");
  const cc = c.config ?? {};
  return {
    platform: { os: String(c.os ?? ""), architecture: String(c.architecture ?? ""), variant: optString(c.variant) },
    config: {
      entrypoint: strings(cc.Entrypoint),
      cmd: strings(cc.Cmd),
      env: parseEnv(cc.Env),
      workingDir: optString(cc.WorkingDir),
      user: optString(cc.User),
      exposedPorts: parsePorts(cc.ExposedPorts),
      labels: parseLabels(cc.Labels),
      stopSignal: optString(cc.StopSignal),
    },
  };
}

/** The part of an image's config a machine records and runs by (src/workload/run-spec.ts). */
export function runConfig(c: ImageConfig): ImageRunConfig {
  return { entrypoint: c.entrypoint, cmd: c.cmd, env: c.env, workingDir: c.workingDir, user: c.user, exposedPorts: c.exposedPorts };
}
