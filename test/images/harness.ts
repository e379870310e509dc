/**
 * Shared helpers of the image tests: a service on a temp cache dir whose tool runner records every
 * argv (the real runTool underneath), debugfs inspection of built disks, polling.
 */
import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { runTool } from "../../src/assets/exec.js";
import { ImageService } from "../../src/images/service.js";
import type { ImageServiceOptions, ToolRunner } from "../../src/images/types.js";
import { sh } from "./fixtures.js";

/** The agent binary built by `make -C guest`. */
export const AGENT = fileURLToPath(new URL("../../guest/build/hf-agent", import.meta.url));

/** One recorded tool run. */
export interface ToolCall {
  cmd: string;
  args: string[];
  env: Record<string, string | undefined>;
}

/** runTool, recording each call first. */
export function recordingRunner(calls: ToolCall[]): ToolRunner {
  return (cmd, args, opts) => {
    calls.push({ cmd, args: [...args], env: { ...(opts?.env ?? {}) } });
    return runTool(cmd, args, opts);
  };
}

/** A service on a fresh temp cache dir (or the given one), with recorded tool calls. */
export async function openService(o: Partial<ImageServiceOptions> = {}): Promise<{ images: ImageService; calls: ToolCall[]; cacheDir: string; cleanup: () => Promise<void> }> {
  const cacheDir = o.cacheDir ?? (await mkdtemp(join(tmpdir(), "hf-imgcache-")));
  const calls: ToolCall[] = [];
  const images = await ImageService.open({ maxCacheSize: 10 * 2 ** 30, agentBinary: AGENT, ...o, cacheDir, run: recordingRunner(calls) });
  return {
    images,
    calls,
    cacheDir,
    cleanup: async () => {
      await images.close();
      if (!o.cacheDir) await rm(cacheDir, { recursive: true, force: true });
    },
  };
}

/** Tool calls of one kind: `skopeo copy`, `skopeo inspect`, `umoci`, `mkfs.ext4`. */
export function countCalls(calls: readonly ToolCall[], cmd: string, sub?: string): number {
  return calls.filter((c) => c.cmd === cmd && (sub === undefined || c.args.includes(sub))).length;
}

/** What debugfs says about a path in an ext4 image, or null if it does not exist. */
export async function debugfsStat(disk: string, path: string): Promise<{ type: string; mode: number; uid: number; gid: number; size: number } | null> {
  const out = await sh("debugfs", ["-R", `stat ${path}`, disk]).catch((e: Error) => e.message);
  const type = /Type:\s+(\S+)/.exec(out)?.[1];
  if (!type) return null;
  return {
    type,
    mode: parseInt(/Mode:\s+(\d+)/.exec(out)?.[1] ?? "0", 8),
    uid: Number(/User:\s+(\d+)/.exec(out)?.[1]),
    gid: Number(/Group:\s+(\d+)/.exec(out)?.[1]),
    size: Number(/Size:\s+(\d+)/.exec(out)?.[1]),
  };
}

/** A file's contents inside an ext4 image. */
export function debugfsCat(disk: string, path: string): Promise<string> {
  return sh("debugfs", ["-R", `cat ${path}`, disk]);
}

/** Polls until fn() is truthy (or fails after timeoutMs). */
export async function eventually<T>(fn: () => Promise<T> | T, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Names in a directory (empty if it does not exist). */
export function ls(dir: string): Promise<string[]> {
  return readdir(dir).catch(() => []);
}

/** Every file under dir, recursively, with its contents (for "no secret stored" checks). */
export async function allFiles(dir: string): Promise<{ path: string; data: Buffer }[]> {
  const out: { path: string; data: Buffer }[] = [];
  for (const name of await ls(dir)) {
    const p = join(dir, name);
    const st = await stat(p);
    if (st.isDirectory()) out.push(...(await allFiles(p)));
    else if (st.isFile()) out.push({ path: p, data: await readFile(p) });
  }
  return out;
}
