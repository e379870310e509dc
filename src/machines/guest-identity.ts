/**
 * What a guest must be told when it wakes up from a snapshot (docs/adr/0009): the time (its clock
 * stood still while it was saved or paused), fresh entropy (clones of one snapshot would
 * otherwise draw the same random numbers: the CRNG is reseeded from host bytes), and for a clone
 * its own hostname (the machine id, as at a cold boot).
 */
import { randomBytes } from "node:crypto";
import type { AgentClient } from "../agent/client.js";

const IDENTITY_TIMEOUT_MS = 5_000;
const ENTROPY_BYTES = 64;

export type Wakeup = "resume" | "restore" | "clone";

export async function refreshGuest(agent: AgentClient, how: Wakeup, machineId: string): Promise<void> {
  const timeNs = BigInt(Date.now()) * 1_000_000n;
  await agent.setIdentity(
    {
      timeNs,
      // A resumed pause is the same VM, with the same RNG state it had: only the clock moved.
      ...(how !== "resume" && { entropy: randomBytes(ENTROPY_BYTES) }),
      ...(how === "clone" && { hostname: machineId.slice(0, 63) }),
    },
    { timeoutMs: IDENTITY_TIMEOUT_MS },
  );
}
