/** Shared helpers for tests that boot real VMs. */
import { rmSync } from "node:fs";
import { mkdtemp, readdir, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Guest assets come from the machine's data dir (built by `npm run setup`). */
export function dataDir(): string {
  return process.env.HYPERFLEET_DATA_DIR ?? "/var/lib/hyperfleet";
}

/** Run dirs this test process made: leftoverQemu() looks for VMs in these only. */
const made: string[] = [];

/**
 * A short per-test directory: UNIX socket paths must stay under 108 bytes. Removed when the test
 * process exits (a machine's destroy removes its contents, not always the directory itself).
 */
export async function tempRunDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "hf-test-"));
  if (made.length === 0) process.once("exit", () => made.forEach((d) => rmSync(d, { recursive: true, force: true })));
  made.push(dir);
  return dir;
}

/**
 * PIDs of qemu processes whose command line points into a run dir this test process made. Only
 * ours: other test processes (or other checkouts) on the same host may be running VMs meanwhile.
 */
export async function leftoverQemu(): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmd = (await readFile(`/proc/${entry}/cmdline`, "utf8")).split("\0");
      if (cmd[0]?.includes("qemu-system") && cmd.some((a) => made.some((d) => a.includes(`${d}/`)))) found.push(Number(entry));
    } catch {
      /* raced with exit */
    }
  }
  return found;
}
