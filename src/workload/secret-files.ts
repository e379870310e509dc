/**
 * A machine's secrets as files in the guest: /run/secrets/<NAME> on their own tmpfs, 0400 and
 * owned by the main process's user (root for a machine without an image), written over the agent
 * channel (SECRETS). Nothing of them reaches the root disk, a command line or a log.
 */
import type { Logger } from "../core/ports/logger.js";
import type { MachineRecord } from "../core/machine.js";
import { HyperfleetError, toHyperfleetError } from "../core/errors.js";
import type { Vm } from "../vmm/vm.js";
import { execDefaults } from "./run-spec.js";

/** Where the guest keeps them (docs/agent-protocol.md, "secrets"). */
export const SECRETS_DIR = "/run/secrets";

/**
 * Replaces the guest's secret files with `secrets`. Resolves to null, or to the error (never
 * thrown: a machine runs on without its files, and the caller decides what else that stops).
 * A machine without secrets gets nothing written (no tmpfs either), unless `always` asks to clear
 * what an earlier state of the guest held (a rotation to none).
 */
export async function deliverSecretFiles(vm: Vm, rec: MachineRecord, secrets: Readonly<Record<string, string>>, log: Logger, always = false): Promise<HyperfleetError | null> {
  const count = Object.keys(secrets).length;
  if (count === 0 && !always) return null;
  const user = execDefaults(rec).user;
  try {
    const agent = vm.agent;
    if (!agent) throw new HyperfleetError("AGENT_DISCONNECTED", "the guest agent connection is closed");
    await agent.setSecrets(secrets, user === undefined ? {} : { user });
    log.info({ secrets: count }, "secrets written to " + SECRETS_DIR);
    return null;
  } catch (e) {
    const he = toHyperfleetError(e);
    log.warn({ code: he.code, err: he }, "secrets could not be written to " + SECRETS_DIR);
    return he;
  }
}
