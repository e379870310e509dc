/**
 * What makes an image machine boot its image and run its main process: the pull before the boot
 * (waiting for the one in progress, or starting one), the main process after it, and taking the
 * main process back in charge when a running VM is adopted after a daemon restart.
 */
import { imagesUnavailable } from "../images/catalog.js";
import type { MainProcesses } from "../workload/main-process.js";
import type { ImagePulls } from "./image-pulls.js";
import type { BootHooks } from "./lifecycle.js";

/** @param pulls null when images are off on this host (`unavailable` says why). */
export function imageBootHooks(pulls: ImagePulls | null, unavailable: string, main: MainProcesses): BootHooks {
  return {
    async prepare(rec, signal, log) {
      if (rec.imageRef === null) return rec;
      if (!pulls) throw imagesUnavailable(unavailable);
      return pulls.ready(rec, signal, log);
    },
    booted: (rec, vm, log) => main.start(rec, vm, log),
    adopted: (rec, vm) => main.adopted(rec, vm),
  };
}
