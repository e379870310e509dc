/**
 * Machines' secrets: sealed with the daemon's key before they are stored (src/host/secret-box.ts),
 * opened only to hand them to the guest. Neither a value nor a sealed one is ever logged or
 * returned; records carry the names alone.
 */
import { HyperfleetError } from "../core/errors.js";
import { openSecret, sealSecret } from "../host/secret-box.js";
import type { MachineRepository } from "../store/machine-repository.js";

/** 256 KiB of values in all (the count and each value's size are the API schema's). */
export const SECRETS_TOTAL_MAX = 262_144;

export class MachineSecrets {
  constructor(
    private readonly key: Buffer,
    private readonly repo: MachineRepository,
  ) {}

  /** Name -> sealed value, for the store. SECRETS_TOO_LARGE past the total bound. */
  seal(machineId: string, secrets: Readonly<Record<string, string>>): Record<string, string> {
    let total = 0;
    for (const v of Object.values(secrets)) total += Buffer.byteLength(v, "utf8");
    if (total > SECRETS_TOTAL_MAX) {
      throw new HyperfleetError("SECRETS_TOO_LARGE", `secrets: the values take ${total} bytes together, more than ${SECRETS_TOTAL_MAX}; keep large material in a volume or fetch it at start`, {
        details: { field: "secrets", limit: SECRETS_TOTAL_MAX },
      });
    }
    return Object.fromEntries(Object.entries(secrets).map(([name, v]) => [name, sealSecret(this.key, machineId, name, v)]));
  }

  /**
   * The machine's secrets in the clear, as stored now (not as a record read earlier says);
   * SECRETS_UNREADABLE for one sealed under another key.
   */
  async open(machineId: string): Promise<Record<string, string>> {
    const sealed = (await this.repo.sealedSecrets(machineId)) ?? {};
    return Object.fromEntries(Object.entries(sealed).map(([name, s]) => [name, openSecret(this.key, machineId, name, s)]));
  }
}
