/**
 * The image side of the composition root: the image cache, opened after the store, since opening
 * evicts and must know which images machines use.
 */
import type { Logger } from "../core/ports/logger.js";
import { isHyperfleetError } from "../core/errors.js";
import { ImageService } from "../images/index.js";
import type { Config } from "../config/config.js";
import type { MachineRecord } from "../core/machine.js";
import { ImageUsers } from "../machines/image-users.js";

export interface OpenedImages {
  /** null: images are off on this host (`unavailable` says why); the daemon serves everything else. */
  service: ImageService | null;
  unavailable: string;
  users: ImageUsers;
}

/**
 * Opens the image cache. Without a usable guest agent binary there is nothing to bake into image
 * disks: that is logged and images are turned off rather than keeping the daemon from starting.
 */
export async function openImages(oci: Config["oci"], records: ReadonlyArray<Pick<MachineRecord, "id" | "imageDigest">>, log: Logger): Promise<OpenedImages> {
  const users = new ImageUsers();
  users.load(records);
  try {
    const service = await ImageService.open({
      cacheDir: oci.cacheDir,
      maxCacheSize: oci.maxCacheSize,
      insecureRegistries: oci.insecureRegistries,
      mirrors: oci.mirrors,
      agentBinary: oci.agentBinary,
      isInUse: users.inUse,
      log: log.child({ component: "images" }),
    });
    users.attach(service);
    return { service, unavailable: "", users };
  } catch (e) {
    if (!isHyperfleetError(e, "GUEST_ASSETS_MISSING") && !isHyperfleetError(e, "INVALID_ARGUMENT")) throw e;
    log.warn({ reason: e.message, agent_binary: oci.agentBinary }, "OCI images are unavailable (set HYPERFLEET_AGENT_BINARY or run `make -C guest`)");
    return { service: null, unavailable: e.message, users };
  }
}
