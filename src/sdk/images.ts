/** The daemon's image cache: list, pull, remove. */
import type { ImageJson, RegistryAuth } from "../contract/images.js";
import { attempt, type Result } from "../core/result.js";
import type { CallOptions, Transport } from "./transport.js";

/** A cold pull of a large image over a slow link takes minutes. */
const PULL_TIMEOUT_MS = 30 * 60_000;

export class Images {
  constructor(private readonly t: Transport) {}

  /** Most recently used first. */
  list(o: CallOptions = {}): Promise<Result<ImageJson[]>> {
    return attempt(() => this.t.json<ImageJson[]>({ ...o, method: "GET", path: "/images" }));
  }

  /** Pulls and converts `image` (at once when cached); resolves when it is ready to boot. */
  pull(image: string, opts: { registryAuth?: RegistryAuth; imageSizeMib?: number } & CallOptions = {}): Promise<Result<ImageJson>> {
    const { registryAuth, imageSizeMib, ...o } = opts;
    const body = { image, ...(registryAuth !== undefined && { registry_auth: registryAuth }), ...(imageSizeMib !== undefined && { image_size_mib: imageSizeMib }) };
    return attempt(() => this.t.json<ImageJson>({ timeoutMs: PULL_TIMEOUT_MS, ...o, method: "POST", path: "/images/pull", body }));
  }

  /** By reference (`alpine:latest`) or digest; IMAGE_IN_USE while a machine uses it. */
  remove(ref: string, o: CallOptions = {}): Promise<Result<void>> {
    return attempt(async () => {
      await this.t.request({ ...o, method: "DELETE", path: `/images/${encodeURIComponent(ref)}` });
    });
  }
}
