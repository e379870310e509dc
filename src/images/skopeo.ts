/**
 * The registry adapter: runs skopeo with our policy, registries.conf and a per-call auth file, and
 * turns its failures into our error codes. The auth file is the only place credentials ever touch
 * the disk: created 0600 inside the pull's private work dir, deleted as soon as skopeo exits.
 */
import { open, rm } from "node:fs/promises";
import { join } from "node:path";
import { HyperfleetError, isHyperfleetError } from "../core/errors.js";
import { abortedError } from "./shared-task.js";
import { formatImageRef, type ImageRef } from "./reference.js";
import { authFileContent, copyArgs, inspectArgs, type RegistryAuth } from "./skopeo-args.js";
import { classifySkopeoError } from "./skopeo-errors.js";
import type { ToolRunner } from "./types.js";

/** Options of SkopeoClient. */
export interface SkopeoClientOptions {
  run: ToolRunner;
  policyPath: string;
  registriesConfPath: string;
  sharedBlobDir: string;
  /** `host:port` of plain-HTTP registries. */
  insecure: ReadonlySet<string>;
  pullTimeoutMs: number;
}

/** One call's context: credentials, the private work dir for the auth file, cancellation. */
export interface CallContext {
  auth: RegistryAuth | undefined;
  workDir: string;
  signal: AbortSignal;
}

/**
 * Variables of the daemon's environment that skopeo may see: PATH to be found, proxies and CA
 * bundles to reach registries. Nothing else: the daemon's own (HYPERFLEET_API_KEY) and any
 * credentials lying around (REGISTRY_AUTH_FILE, DOCKER_CONFIG, ...) stay out.
 */
export const SKOPEO_ENV_PASSTHROUGH = ["PATH", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy", "SSL_CERT_FILE", "SSL_CERT_DIR"] as const;

/**
 * skopeo's whole environment, pure. HOME, XDG_RUNTIME_DIR and TMPDIR are the call's private work
 * dir, removed on any outcome: skopeo's scratch files go there, and it cannot pick up the daemon
 * user's ~/.docker/config.json or containers auth.json, only the auth file we pass.
 */
export function skopeoEnv(from: Readonly<Record<string, string | undefined>>, o: { registriesConfPath: string; workDir: string }): Record<string, string> {
  const env: Record<string, string> = {};
  for (const k of SKOPEO_ENV_PASSTHROUGH) {
    const v = from[k];
    if (v !== undefined && v !== "") env[k] = v;
  }
  env.PATH ??= "/usr/local/bin:/usr/bin:/bin";
  env.CONTAINERS_REGISTRIES_CONF = o.registriesConfPath;
  env.HOME = o.workDir;
  env.XDG_RUNTIME_DIR = o.workDir;
  env.TMPDIR = o.workDir;
  return env;
}

export class SkopeoClient {
  constructor(private readonly o: SkopeoClientOptions) {}

  /** The manifest or index for `image`, byte for byte as the registry sent it. */
  async inspectRaw(image: ImageRef, ctx: CallContext): Promise<Buffer> {
    return this.withAuthFile(image, ctx, async (authFile) => {
      const args = inspectArgs({ image, tlsVerify: !this.o.insecure.has(image.registry), authFile, policyPath: this.o.policyPath, registriesConfPath: this.o.registriesConfPath });
      return (await this.skopeo(args, image, ctx.signal, 120_000, ctx.workDir)).stdout;
    });
  }

  /** Copies `image` (pin it to a digest first) into the OCI layout at layoutDir. */
  async copy(image: ImageRef, layoutDir: string, ctx: CallContext): Promise<void> {
    await this.withAuthFile(image, ctx, async (authFile) => {
      const args = copyArgs({
        image,
        tlsVerify: !this.o.insecure.has(image.registry),
        authFile,
        policyPath: this.o.policyPath,
        registriesConfPath: this.o.registriesConfPath,
        layoutDir,
        sharedBlobDir: this.o.sharedBlobDir,
      });
      await this.skopeo(args, image, ctx.signal, this.o.pullTimeoutMs, ctx.workDir);
    });
  }

  private async withAuthFile<T>(image: ImageRef, ctx: CallContext, fn: (authFile: string) => Promise<T>): Promise<T> {
    const path = join(ctx.workDir, `auth-${Date.now()}-${Math.random().toString(36).slice(2)}.json`);
    // "wx" + 0600: a fresh file nobody else can read, even for an instant.
    const fh = await open(path, "wx", 0o600);
    try {
      try {
        await fh.writeFile(authFileContent(image.registry, ctx.auth));
      } finally {
        await fh.close();
      }
      return await fn(path);
    } finally {
      await rm(path, { force: true });
    }
  }

  private async skopeo(args: string[], image: ImageRef, signal: AbortSignal, timeoutMs: number, workDir: string) {
    // eslint-disable-next-line no-restricted-properties -- skopeoEnv keeps only what skopeo needs of it; not configuration
    const env = skopeoEnv(process.env, { registriesConfPath: this.o.registriesConfPath, workDir });
    try {
      return await this.o.run("skopeo", args, { signal, timeoutMs, env });
    } catch (e) {
      if (signal.aborted) throw abortedError(`pulling ${formatImageRef(image)}`);
      if (isHyperfleetError(e, "HOST_TOOL_MISSING")) {
        throw new HyperfleetError("HOST_TOOL_MISSING", "skopeo not found: install it with `apt-get install skopeo`", { cause: e, details: { tool: "skopeo" } });
      }
      const stderr = isHyperfleetError(e) && typeof e.details?.stderr === "string" ? e.details.stderr : "";
      if (!stderr && e instanceof Error && /killed by SIG/.test(e.message)) {
        throw new HyperfleetError("IMAGE_PULL_FAILED", `pulling ${formatImageRef(image)} did not finish within ${Math.round(timeoutMs / 1000)} s`, { cause: e });
      }
      throw classifySkopeoError(stderr, formatImageRef(image), image.registry, e);
    }
  }
}
