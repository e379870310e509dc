/**
 * What makes an image machine boot its image and run its main process: the pull before the boot
 * (waiting for the one in progress, or starting one), the main process after it, and taking the
 * main process back in charge when a running VM is adopted after a daemon restart. Secrets: a
 * machine whose secrets do not open with this daemon's key fails before it boots; after a boot
 * the main process's start hands them to /run/secrets and to it; a restored guest gets its files
 * rewritten (its main process keeps the environment it was restored with).
 */
import { toHyperfleetError } from "../core/errors.js";
import { imagesUnavailable } from "../images/catalog.js";
import type { MainProcesses } from "../workload/main-process.js";
import { deliverSecretFiles } from "../workload/secret-files.js";
import type { ImagePulls } from "./image-pulls.js";
import type { BootHooks } from "./lifecycle.js";
import type { MachineSecrets } from "./secrets.js";

/** @param pulls null when images are off on this host (`unavailable` says why). */
export function imageBootHooks(pulls: ImagePulls | null, unavailable: string, main: MainProcesses, secrets: MachineSecrets): BootHooks {
  return {
    async prepare(rec, signal, log) {
      await secrets.open(rec.id);
      if (rec.imageRef === null) return rec;
      if (!pulls) throw imagesUnavailable(unavailable);
      return pulls.ready(rec, signal, log);
    },
    booted: (rec, vm, log) => main.start(rec, vm, log),
    async adopted(rec, vm, log) {
      if (rec.restoreFrom !== null && rec.secretNames.length > 0) {
        await secrets.open(rec.id).then((plain) => deliverSecretFiles(vm, rec, plain, log), (e: unknown) => log.error({ code: toHyperfleetError(e).code }, "secrets do not open; /run/secrets not rewritten"));
      }
      await main.adopted(rec, vm);
    },
  };
}
