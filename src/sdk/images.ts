/** The daemon's image cache: list, pull, remove. */
import type { ImageJson, PullProgressJson, RegistryAuth } from "../contract/images.js";
import { attempt, type Result } from "../core/result.js";
import { readPullLines } from "./pull-lines.js";
import type { CallOptions, Transport } from "./transport.js";

/** A cold pull of a large image over a slow link takes minutes. */
const PULL_TIMEOUT_MS = 30 * 60_000;

export class Images {
  constructor(private readonly t: Transport) {}

  /** Most recently used first. */
  list(o: CallOptions = {}): Promise<Result<ImageJson[]>> {
    return attempt(() => this.t.json<ImageJson[]>({ ...o, method: "GET", path: "/images" }));
  }

  /**
   * Pulls and converts `image` (at once when cached); resolves when it is ready to boot. With
   * `onProgress`, the daemon streams progress (phase, layers and compressed bytes done/total; at
   * most 10 a second) and the timeout covers only the wait for the stream to start.
   */
  pull(image: string, opts: { registryAuth?: RegistryAuth; imageSizeMib?: number; onProgress?: (p: PullProgressJson) => void } & CallOptions = {}): Promise<Result<ImageJson>> {
    const { registryAuth, imageSizeMib, onProgress, ...o } = opts;
    const body = { image, ...(registryAuth !== undefined && { registry_auth: registryAuth }), ...(imageSizeMib !== undefined && { image_size_mib: imageSizeMib }) };
    if (onProgress !== undefined) {
      return attempt(async () => {
        const a = await this.t.open({ timeoutMs: PULL_TIMEOUT_MS, ...o, method: "POST", path: "/images/pull", body, accept: "application/x-ndjson" });
        // A pull failing before its first line gets a 4xx, which open() throws; a 2xx is the stream.
        return readPullLines(a.chunks, onProgress);
      });
    }
    return attempt(() => this.t.json<ImageJson>({ timeoutMs: PULL_TIMEOUT_MS, ...o, method: "POST", path: "/images/pull", body }));
  }

  /** By reference (`alpine:latest`) or digest; IMAGE_IN_USE while a machine uses it. */
  remove(ref: string, o: CallOptions = {}): Promise<Result<void>> {
    return attempt(async () => {
      await this.t.request({ ...o, method: "DELETE", path: `/images/${encodeURIComponent(ref)}` });
    });
  }
}
