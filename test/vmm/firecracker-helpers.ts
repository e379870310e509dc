/**
 * What the Firecracker driver's tests share: the stand-in as the driver's binary (through a small
 * wrapper that gives each process a request log in its run dir, since the driver hands the VMM no
 * environment of ours), cleanup of the stand-in's guest dirs, and the real-Firecracker gate.
 */
import { constants, accessSync, chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MANIFEST_FILE } from "../../src/assets/index.js";
import type { LogEntry } from "./firecracker-standin/api.js";
import { STANDIN_BIN } from "./firecracker-standin/harness.js";
import { guestDirFor } from "./firecracker-standin/vm.js";
import { findBinary } from "../../src/vmm/firecracker/probe.js";

export const dataDir = process.env.HYPERFLEET_DATA_DIR ?? "/var/lib/hyperfleet";

/** The request log a process of the wrapper writes (in its run dir: its working directory). */
export const REQUEST_LOG = "requests.jsonl";

/** An executable that runs the stand-in with FC_STANDIN_LOG=<cwd>/requests.jsonl; made once per test file. */
export function standinWrapper(): { bin: string; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), "hf-fcw-"));
  const bin = join(dir, "firecracker");
  writeFileSync(bin, `#!/bin/sh\nFC_STANDIN_LOG="$(pwd -P)/${REQUEST_LOG}" exec '${STANDIN_BIN}' "$@"\n`);
  chmodSync(bin, 0o755);
  return { bin, dir };
}

export function requestLog(runDir: string): LogEntry[] {
  const p = join(runDir, REQUEST_LOG);
  if (!existsSync(p)) return [];
  return readFileSync(p, "utf8").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as LogEntry);
}

/** A stand-in killed by SIGKILL leaves its guest's socket dir; ours go by pid once the process is gone. */
export async function removeStandinLeftovers(pid: number): Promise<void> {
  await rm(guestDirFor(pid), { recursive: true, force: true });
}

/** Why the real Firecracker cannot run the suite here; null when it can. */
export function whyNoRealFirecracker(bin: string): string | null {
  if (findBinary(bin, process.env.PATH ?? "") === null) return `no ${bin} binary on PATH (install it: docs/firecracker.md; or set HYPERFLEET_FIRECRACKER_BIN)`;
  try {
    accessSync("/dev/kvm", constants.R_OK | constants.W_OK);
  } catch {
    return "no usable /dev/kvm (Firecracker needs KVM)";
  }
  if (!existsSync(join(dataDir, MANIFEST_FILE))) return `no guest assets in ${dataDir} (npm run setup)`;
  return null;
}

/** Runtime files a failed or finished VM must not leave (its logs may stay). */
export function runtimeFilesIn(names: string[]): string[] {
  return names.filter((f) => /\.(sock|pid)$|^meta\.json$|^firecracker\.metrics$/.test(f));
}

