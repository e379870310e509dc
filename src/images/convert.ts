/**
 * OCI layout -> ext4 root disk: `umoci raw unpack` (layers applied in order, whiteouts honoured),
 * our agent and mount points added, then `mkfs.ext4 -d` (no loop mount). Everything happens inside
 * the caller's work dir; the caller publishes the finished disk.
 *
 * Ownership: as root we unpack without --rootless, so files keep the uids, gids, modes, device nodes
 * and xattrs the layers record, and mkfs.ext4 -d copies them into the filesystem. `--rootless`
 * (used only when not root) cannot do that: umoci then writes every file as the calling user and
 * turns device nodes into empty files, so the disk would be owned by the daemon's uid.
 * `raw unpack` rather than `unpack`: no runtime bundle or mtree, which we would only throw away.
 */
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { HyperfleetError, isHyperfleetError } from "../core/errors.js";
import { imageMkfsArgs, planDisk, type DiskPlan } from "./disk-plan.js";
import { measureTree, prepareRootfs } from "./rootfs-prep.js";
import { abortedError } from "./shared-task.js";
import { LAYOUT_TAG } from "./skopeo-args.js";
import type { ToolRunner } from "./types.js";

/** Inputs of buildDisk. */
export interface BuildDiskInput {
  run: ToolRunner;
  /** OCI layout holding the image (tag LAYOUT_TAG) with all its blobs. */
  layoutDir: string;
  workDir: string;
  agent: Uint8Array;
  rootless: boolean;
  /** Explicit filesystem size; too small -> IMAGE_TOO_LARGE. */
  sizeMib?: number;
  uuid: string;
  /** For messages. */
  image: string;
  signal: AbortSignal;
  onPhase: (phase: "unpacking" | "building") => void;
}

/** Arguments of `umoci raw unpack`. */
export function umociUnpackArgs(layoutDir: string, rootfs: string, rootless: boolean): string[] {
  return ["--log", "error", "raw", "unpack", ...(rootless ? ["--rootless"] : []), "--image", `${layoutDir}:${LAYOUT_TAG}`, rootfs];
}

const stderrOf = (e: unknown): string => (isHyperfleetError(e) && typeof e.details?.stderr === "string" ? e.details.stderr : e instanceof Error ? e.message : String(e));
const NO_SPACE = /no space left on device|ENOSPC/i;
const FS_FULL = /could not allocate (block|inode)|no free space in the filesystem|not enough space to build/i;

function toolError(tool: string, e: unknown, signal: AbortSignal, image: string): HyperfleetError {
  if (signal.aborted) return abortedError(`building the disk of ${image}`);
  if (isHyperfleetError(e, "HOST_TOOL_MISSING")) {
    return new HyperfleetError("HOST_TOOL_MISSING", `${tool} not found: install it with \`apt-get install ${tool === "umoci" ? "umoci" : "e2fsprogs"}\``, { cause: e });
  }
  const text = stderrOf(e);
  if (NO_SPACE.test(text)) return new HyperfleetError("HOST_DISK_FULL", `the image cache's filesystem is full while building the disk of ${image}; free space or lower the cache size limit`, { cause: e });
  if (tool === "umoci") return new HyperfleetError("IMAGE_INVALID", `cannot unpack ${image}: ${text.trim().split("\n").at(-1) ?? "umoci failed"}`, { cause: e });
  return e instanceof HyperfleetError ? e : new HyperfleetError("INTERNAL", text, { cause: e });
}

/** Builds `<workDir>/disk.ext4` from the layout; returns its path and plan. */
export async function buildDisk(i: BuildDiskInput): Promise<{ diskPath: string; plan: DiskPlan }> {
  const rootfs = join(i.workDir, "rootfs");
  i.onPhase("unpacking");
  await i.run("umoci", umociUnpackArgs(i.layoutDir, rootfs, i.rootless), { signal: i.signal, timeoutMs: 30 * 60_000 }).catch((e: unknown) => {
    throw toolError("umoci", e, i.signal, i.image);
  });
  i.onPhase("building");
  await prepareRootfs(rootfs, i.agent);
  const usage = await measureTree(rootfs);
  const { plan, minimumMib } = planDisk(usage, i.sizeMib);
  if (!plan) {
    throw new HyperfleetError("IMAGE_TOO_LARGE", `${i.image} needs a disk of at least ${minimumMib} MiB, but imageSizeMib is ${i.sizeMib}; raise imageSizeMib or leave it out`, {
      details: { field: "imageSizeMib", minimumMib, requestedMib: i.sizeMib },
    });
  }
  const diskPath = join(i.workDir, "disk.ext4");
  try {
    await i.run("mkfs.ext4", imageMkfsArgs({ image: diskPath, sourceDir: rootfs, plan, uuid: i.uuid }), { signal: i.signal, timeoutMs: 30 * 60_000 });
  } catch (e) {
    if (!i.signal.aborted && !NO_SPACE.test(stderrOf(e)) && FS_FULL.test(stderrOf(e))) {
      throw new HyperfleetError("IMAGE_TOO_LARGE", `${i.image} does not fit in ${plan.sizeMib} MiB; raise imageSizeMib`, { cause: e, details: { field: "imageSizeMib", requestedMib: plan.sizeMib } });
    }
    throw toolError("mkfs.ext4", e, i.signal, i.image);
  }
  // The unpacked tree is as big as the disk's contents: free it before the caller publishes.
  await rm(rootfs, { recursive: true, force: true });
  return { diskPath, plan };
}
