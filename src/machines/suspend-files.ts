/**
 * A suspended machine's saved state: `<runDir>/suspend/`, the files its VMM wrote (VmSnapshot,
 * purpose `suspend`) and `snapshot.json`, written last, which says the state is complete. A
 * daemon that dies mid-suspend leaves no snapshot.json: the files are not trusted, and the VM
 * (still running, or killed after the save) is read from what remains.
 */
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { VmSnapshot } from "../core/ports/vmm-driver.js";

const MARKER = "snapshot.json";

export function suspendDir(runDir: string): string {
  return join(runDir, "suspend");
}

/** An empty directory for a new suspend (what an earlier, unfinished one left is removed). */
export async function freshSuspendDir(runDir: string): Promise<string> {
  const dir = suspendDir(runDir);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  return dir;
}

/** Marks the suspended state complete. */
export async function recordSuspended(snap: VmSnapshot): Promise<void> {
  const file = join(snap.dir, MARKER);
  await writeFile(`${file}.tmp`, JSON.stringify(snap));
  await rename(`${file}.tmp`, file);
}

/** The complete suspended state in runDir, or null. */
export async function readSuspended(runDir: string): Promise<VmSnapshot | null> {
  try {
    return JSON.parse(await readFile(join(suspendDir(runDir), MARKER), "utf8")) as VmSnapshot;
  } catch {
    return null;
  }
}

/**
 * The complete suspended state in runDir, which stops being complete: its marker is removed, so a
 * restore of it is tried once (the files go once the machine runs, or with the next suspend).
 */
export async function takeSuspended(runDir: string): Promise<VmSnapshot | null> {
  const saved = await readSuspended(runDir);
  if (saved !== null) await rm(join(suspendDir(runDir), MARKER), { force: true });
  return saved;
}

export async function removeSuspended(runDir: string): Promise<void> {
  await rm(suspendDir(runDir), { recursive: true, force: true });
}
