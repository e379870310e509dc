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

export class SkopeoClient {
  constructor(private readonly o: SkopeoClientOptions) {}

  /** The manifest or index for `image`, byte for byte as the registry sent it. */
  async inspectRaw(image: ImageRef, ctx: CallContext): Promise<Buffer> {
    return this.withAuthFile(image, ctx, async (authFile) => {
      const args = inspectArgs({ image, tlsVerify: !this.o.insecure.has(image.registry), authFile, policyPath: this.o.policyPath, registriesConfPath: this.o.registriesConfPath });
      return (await this.skopeo(args, image, ctx.signal, 120_000)).stdout;
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

  private async skopeo(args: string[], image: ImageRef, signal: AbortSignal, timeoutMs: number, tmpDir?: string) {
    const env: NodeJS.ProcessEnv = { ...process.env, CONTAINERS_REGISTRIES_CONF: this.o.registriesConfPath };
    // skopeo's own scratch files go into the pull's work dir, which is removed on any outcome.
    if (tmpDir) env.TMPDIR = tmpDir;
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
