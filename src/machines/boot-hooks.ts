/**
 * What makes an image machine boot its image and run its main process: the pull before the boot
 * (waiting for the one in progress, or starting one), the main process after it, and taking the
 * main process back in charge when a running VM is adopted after a daemon restart. Secrets: a
 * machine whose secrets do not open with this daemon's key fails before it boots; after a boot
 * they reach /run/secrets and the main process; a restored guest gets its files rewritten (its
 * main process keeps the environment it was restored with).
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
      await secrets.open(rec);
      if (rec.imageRef === null) return rec;
      if (!pulls) throw imagesUnavailable(unavailable);
      return pulls.ready(rec, signal, log);
    },
    async booted(rec, vm, log) {
      let plain: Record<string, string>;
      try {
        plain = await secrets.open(rec);
      } catch (e) {
        // Checked before the boot with the same key: only a store altered meanwhile gets here.
        log.error({ code: toHyperfleetError(e).code }, "secrets do not open; the main process is not started");
        return;
      }
      await main.start(rec, vm, log, plain);
    },
    async adopted(rec, vm, log) {
      if (rec.restoreFrom !== null && rec.secretNames.length > 0) {
        await secrets.open(rec).then((plain) => deliverSecretFiles(vm, rec, plain, log), (e: unknown) => log.error({ code: toHyperfleetError(e).code }, "secrets do not open; /run/secrets not rewritten"));
      }
      await main.adopted(rec, vm);
    },
  };
}
