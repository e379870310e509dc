/** Shared helpers for tests that boot real VMs. */
import { mkdtemp, readdir, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Guest assets come from the machine's data dir (built by `npm run setup`). */
export function dataDir(): string {
  return process.env.HYPERFLEET_DATA_DIR ?? "/var/lib/hyperfleet";
}

/** A short per-test directory: UNIX socket paths must stay under 108 bytes. */
export function tempRunDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), "hf-test-"));
}

/** PIDs of qemu processes started by this test process (their -name carries our marker dirs). */
export async function leftoverQemu(): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmd = (await readFile(`/proc/${entry}/cmdline`, "utf8")).split("\0");
      if (cmd[0]?.includes("qemu-system") && cmd.some((a) => a.includes("/hf-test-"))) found.push(Number(entry));
    } catch {
      /* raced with exit */
    }
  }
  return found;
}
