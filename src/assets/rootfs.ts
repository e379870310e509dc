/**
 * Builds the default base root disk <outDir>/base-<hash>.ext4 with `mkfs.ext4 -d`: no loop mounts,
 * no privileges beyond writing files. Content-hashed over the tree and the mkfs parameters, so it
 * is rebuilt only when busybox, the agent or the layout change, and old images that VMs may still
 * use as a backing file are never overwritten.
 */
import { chmod, mkdir, rename, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { HyperfleetError } from "../core/errors.js";
import type { Busybox } from "./busybox.js";
import { runTool } from "./exec.js";
import { exists, makeWorkDir } from "./fs-util.js";
import { mkfsArgs, rootfsTree, uuidFromHex } from "./rootfs-layout.js";
import { readStaticBinary } from "./static-binary.js";
import { hashTree, normalizeTree, type TreeEntry } from "./tree.js";

/** Default size of the base root disk (a sparse file; only the contents take space). */
export const DEFAULT_ROOTFS_SIZE_MIB = 512;
/** Bump when the build changes in a way the tree hash does not see. */
const BUILD_VERSION = 1;

/** Options of buildRootfs. */
export interface BuildRootfsOptions {
  /** Directory the image is written to. */
  outDir: string;
  /** Work directories go under <dataDir>/tmp (same filesystem as outDir, for the final rename). */
  dataDir: string;
  /** Static binary installed as /sbin/hf-agent (the default init). */
  agentBinary: string;
  /** Static hf-vsock-pipe (guest/build/hf-vsock-pipe), installed as /usr/bin/hf-vsock-pipe when given. */
  vsockPipeBinary?: string;
  busybox: Pick<Busybox, "data" | "applets">;
  sizeMiB?: number;
  hostname?: string;
  signal?: AbortSignal;
}

/** The built image. */
export interface BuiltRootfs {
  path: string;
  created: boolean;
}

/** Writes a tree (without device nodes) into an existing empty directory, modes exact (no umask). */
export async function materializeTree(entries: readonly TreeEntry[], dir: string): Promise<void> {
  for (const e of normalizeTree(entries)) {
    const p = join(dir, e.path);
    switch (e.type) {
      case "dir":
        await mkdir(p);
        await chmod(p, e.mode);
        break;
      case "file":
        await writeFile(p, e.data);
        await chmod(p, e.mode);
        break;
      case "symlink":
        await symlink(e.target, p);
        break;
      default:
        throw new HyperfleetError("INVALID_ARGUMENT", `device node ${e.path} cannot go into a root disk tree (/dev is devtmpfs)`);
    }
  }
}

/** Builds (or finds) the base root disk. */
export async function buildRootfs(opts: BuildRootfsOptions): Promise<BuiltRootfs> {
  const sizeMiB = opts.sizeMiB ?? DEFAULT_ROOTFS_SIZE_MIB;
  const agent = await readStaticBinary(opts.agentBinary, "hf-agent", "build it with `make -C guest`");
  const vsockPipe = opts.vsockPipeBinary === undefined ? undefined : await readStaticBinary(opts.vsockPipeBinary, "hf-vsock-pipe", "build it with `make -C guest`");
  const tree = rootfsTree({ busybox: opts.busybox.data, applets: opts.busybox.applets, agent, vsockPipe, hostname: opts.hostname });
  const hash = hashTree(tree, JSON.stringify({ BUILD_VERSION, sizeMiB, args: mkfsArgs({ image: "", sourceDir: "", sizeMiB, uuid: "" }) }));
  const path = join(opts.outDir, `base-${hash.slice(0, 16)}.ext4`);
  if (await exists(path)) return { path, created: false };

  const work = await makeWorkDir(opts.dataDir, "rootfs");
  try {
    const root = join(work, "root");
    await mkdir(root);
    await materializeTree(tree, root);
    const image = join(work, "base.ext4");
    await runTool("mkfs.ext4", mkfsArgs({ image, sourceDir: root, sizeMiB, uuid: uuidFromHex(hash) }), { signal: opts.signal });
    await mkdir(opts.outDir, { recursive: true });
    await rename(image, path);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return { path, created: true };
}
