/**
 * The image cache as the API sees it (GET/DELETE /images, POST /images/pull). When the image
 * service could not be opened (no guest agent binary to bake into disks), every call says why.
 */
import { HyperfleetError } from "../core/errors.js";
import { isDigest } from "./reference.js";
import type { CachedImage, ImageService } from "./index.js";
import type { CallContext, ImageServicePort, ImageView, PullImageRequest } from "../core/ports/services.js";
import { runConfig } from "./config.js";

export function imageView(i: CachedImage): ImageView {
  return {
    refs: i.refs,
    digest: i.digest,
    resolvedRef: i.resolvedRef,
    sizeBytes: i.sizeBytes,
    diskSizeMib: i.diskSizeMib,
    inUse: i.inUse,
    createdAt: i.createdAt.toISOString(),
    lastUsedAt: i.lastUsedAt.toISOString(),
    platform: i.platform,
    config: runConfig(i.config),
  };
}

/** The error for every image request when images are off. */
export function imagesUnavailable(reason: string): HyperfleetError {
  return new HyperfleetError("GUEST_ASSETS_MISSING", `OCI images are unavailable on this host: ${reason}`);
}

export class ImageCatalog implements ImageServicePort {
  /**
   * @param images null when the service could not be opened (`unavailable` says why)
   * @param shutdown aborts pulls when the daemon stops
   */
  constructor(
    private readonly images: ImageService | null,
    private readonly unavailable: string,
    private readonly shutdown: AbortSignal,
  ) {}

  list(): Promise<ImageView[]> {
    return Promise.resolve(this.service().list().map(imageView));
  }

  async remove(ref: string): Promise<void> {
    const svc = this.service();
    if (!isDigest(ref)) return svc.remove(ref);
    // A bare digest names the image whatever tag it came from: remove it by its pinned reference.
    const hit = svc.list().find((i) => i.digest === ref || i.indexDigests.includes(ref));
    if (!hit) throw new HyperfleetError("IMAGE_NOT_CACHED", `no cached image has digest ${ref}; GET /images lists them`);
    return svc.remove(hit.resolvedRef);
  }

  /**
   * Pulls ahead of time. The client's disconnect does not cancel it (warming the cache is the
   * point); only a daemon shutdown does. See docs/adr/0005-oci-images-in-the-api.md.
   */
  async pull(req: PullImageRequest, ctx: CallContext = {}): Promise<ImageView> {
    const img = await this.service().pull(req.image, {
      ...(req.registryAuth !== undefined && { auth: req.registryAuth }),
      ...(req.imageSizeMib !== undefined && { imageSizeMib: req.imageSizeMib }),
      signal: this.shutdown,
      ...(req.onProgress !== undefined && { onProgress: req.onProgress }),
    });
    ctx.log?.info({ image: req.image, digest: img.digest }, "image cached");
    return imageView(img);
  }

  private service(): ImageService {
    if (!this.images) throw imagesUnavailable(this.unavailable);
    return this.images;
  }
}
