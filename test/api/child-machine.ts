/**
 * A daemon child process with one running machine, for tests that measure the daemon from outside
 * (its RSS in /proc) or need a real socket (a client that disconnects). Cleanup is by pid only.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AUTH, killLeftoverVmms, spawnDaemon, type ChildDaemon } from "./helpers.js";

export interface ChildMachine {
  d: ChildDaemon;
  id: string;
  /** POST /machines/:id/exec; answers status and parsed body. */
  exec(body: Record<string, unknown>, signal?: AbortSignal): Promise<{ status: number; body: Record<string, unknown> }>;
  /** Deletes the machine, stops the daemon (SIGKILL if SIGTERM is not enough), removes the temp dir. */
  close(): Promise<void>;
}

export async function startChildMachine(extra: Record<string, string> = {}): Promise<ChildMachine> {
  const dataDir = await mkdtemp(join(tmpdir(), "hf-io-"));
  let d: ChildDaemon | undefined;
  let id = "";
  const close = async () => {
    if (d && d.proc.exitCode === null && d.proc.signalCode === null) {
      if (id) await d.fetch("DELETE", `/machines/${id}`).catch(() => undefined);
      d.proc.kill("SIGTERM");
      const timer = setTimeout(() => d?.proc.kill("SIGKILL"), 15_000);
      await d.exited;
      clearTimeout(timer);
    }
    killLeftoverVmms(dataDir);
    await rm(dataDir, { recursive: true, force: true });
  };
  try {
    d = await spawnDaemon(dataDir, extra);
    const c = await d.fetch("POST", "/machines", { name: "io", vcpu_count: 1, mem_size_mib: 256, start: true });
    if (c.status !== 201) throw new Error(`create: ${c.status} ${JSON.stringify(c.body)}`);
    id = c.body.id as string;
    // Boots are slow when other VMs share the CPUs: wait up to 3 x 30 s (the longest one wait).
    let w = await d.fetch("GET", `/machines/${id}/wait?status=running&timeout=30`);
    for (let i = 0; i < 2 && w.status === 408; i++) w = await d.fetch("GET", `/machines/${id}/wait?status=running&timeout=30`);
    if (w.status !== 200) throw new Error(`wait: ${w.status} ${JSON.stringify(w.body)}\n${d.output().slice(-3000)}`);
  } catch (e) {
    await close();
    throw e;
  }
  const daemon = d;
  return {
    d: daemon,
    id,
    async exec(body, signal) {
      const res = await fetch(`${daemon.url}/machines/${id}/exec`, {
        method: "POST",
        headers: { ...AUTH, "content-type": "application/json" },
        body: JSON.stringify(body),
        ...(signal && { signal }),
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    },
    close,
  };
}

/** Resident and peak resident memory of a process, in MiB (from /proc/<pid>/status). */
export function memMib(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
  return { rss: kib("VmRSS") / 1024, peak: kib("VmHWM") / 1024 };
}

/** Resets the peak (VmHWM) to the current RSS, so the next peak is that of what follows. */
export function resetPeak(pid: number): void {
  writeFileSync(`/proc/${pid}/clear_refs`, "5");
}
