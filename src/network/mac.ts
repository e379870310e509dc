/**
 * A machine's MAC, derived from its id so it is stable across restarts and needs no storage. Only
 * the namespace's TAP ever sees it (docs/adr/0008), so hash collisions between machines are harmless.
 */
import { createHash } from "node:crypto";

/** sha256(id)'s first six bytes, locally administered (bit 1 set) and unicast (bit 0 clear). */
export function macFromMachineId(id: string): string {
  const b = createHash("sha256").update(id).digest().subarray(0, 6);
  b[0] = (b[0]! & 0xfc) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join(":");
}
