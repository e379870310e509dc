/** Shared by the lease-file unit tests and the library-network tests. */
import { spawn } from "node:child_process";
import { processStart, type Owner } from "../src/network/lease-files.js";

/** A process that has exited, with the start time it had: the owner of a stale lease. */
export async function deadOwner(): Promise<Owner> {
  const c = spawn("sleep", ["30"]);
  const start = await processStart(c.pid!);
  c.kill("SIGKILL");
  await new Promise((r) => c.once("exit", r));
  return { pid: c.pid!, start: start! };
}
