/**
 * The guest kernel: Debian's cloud kernel, fetched with apt into <dataDir>/kernel/<release>/
 * (never installed into the host's /boot), with modules.dep generated and the ELF vmlinux
 * extracted next to the bzImage.
 */
import { readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { HyperfleetError } from "../core/errors.js";
import type { PackageRef } from "./apt-parse.js";
import { downloadDeb, extractDeb, resolvePinnedOrCandidate } from "./apt.js";
import { extractVmlinux } from "./bzimage.js";
import { runTool } from "./exec.js";
import { exists, makeWorkDir, publishDir, writeFileAtomic } from "./fs-util.js";

/**
 * The kernel we build and test against (Debian bookworm-security, 2025). Bump deliberately: apt
 * drops old versions from the mirror, and then setup falls back to the meta package's candidate.
 */
export const DEFAULT_KERNEL: PackageRef = { name: "linux-image-6.1.0-56-cloud-amd64", version: "6.1.192-2" };
/** The meta package whose candidate is used when the pinned version is gone. */
export const KERNEL_META_PACKAGE = "linux-image-cloud-amd64";
const RECORD_FILE = "kernel.json";

/** A fetched kernel. Paths are absolute. */
export interface GuestKernel {
  /** `uname -r` of the guest, e.g. "6.1.0-56-cloud-amd64". */
  release: string;
  package: PackageRef;
  dir: string;
  bzImage: string;
  vmlinux: string;
  /** /lib/modules/<release> of this kernel, with modules.dep. */
  modulesDir: string;
}

interface KernelRecord {
  package: PackageRef;
  release: string;
}

/** "linux-image-6.1.0-56-cloud-amd64" -> "6.1.0-56-cloud-amd64". */
export function releaseOf(pkgName: string): string {
  if (!pkgName.startsWith("linux-image-")) throw new HyperfleetError("INVALID_ARGUMENT", `${pkgName} is not a linux-image-<release> package`);
  return pkgName.slice("linux-image-".length);
}

function kernelAt(dir: string, rec: KernelRecord): GuestKernel {
  return {
    release: rec.release,
    package: rec.package,
    dir,
    bzImage: join(dir, "boot", `vmlinuz-${rec.release}`),
    vmlinux: join(dir, "vmlinux"),
    modulesDir: join(dir, "lib", "modules", rec.release),
  };
}

async function readRecord(dir: string): Promise<KernelRecord | null> {
  try {
    return JSON.parse(await readFile(join(dir, RECORD_FILE), "utf8")) as KernelRecord;
  } catch {
    return null;
  }
}

/** The kernel `pinned` (default DEFAULT_KERNEL) if it was already fetched into dataDir, else null. Never calls apt. */
export async function findCachedKernel(dataDir: string, pinned: PackageRef = DEFAULT_KERNEL): Promise<GuestKernel | null> {
  const dir = join(dataDir, "kernel", releaseOf(pinned.name));
  const rec = await readRecord(dir);
  return rec?.package.version === pinned.version ? kernelAt(dir, rec) : null;
}

/** Options of ensureKernel. */
export interface EnsureKernelOptions {
  dataDir: string;
  /** Exact package to fetch (default DEFAULT_KERNEL). */
  pinned?: PackageRef;
  log?: (msg: string) => void;
  signal?: AbortSignal;
}

/**
 * Returns the kernel under <dataDir>/kernel, fetching it first if needed. Idempotent: a kernel
 * already there is used without asking apt; a fetch is built in a work directory and renamed into
 * place only when complete.
 */
export async function ensureKernel(opts: EnsureKernelOptions): Promise<GuestKernel> {
  const log = opts.log ?? (() => {});
  const pinned = opts.pinned ?? DEFAULT_KERNEL;
  const dirOf = (p: PackageRef): string => join(opts.dataDir, "kernel", releaseOf(p.name));

  const cached = await findCachedKernel(opts.dataDir, pinned);
  if (cached !== null) return cached;

  const pkg = await resolvePinnedOrCandidate(pinned, KERNEL_META_PACKAGE, opts.signal);
  if (pkg.version !== pinned.version || pkg.name !== pinned.name) {
    log(`pinned kernel ${pinned.name}=${pinned.version} is not offered by apt; using the candidate ${pkg.name}=${pkg.version}`);
  }
  const dir = dirOf(pkg);
  const existing = await readRecord(dir);
  if (existing?.package.version === pkg.version) return kernelAt(dir, existing);

  log(`fetching kernel ${pkg.name}=${pkg.version} with apt-get download`);
  const work = await makeWorkDir(opts.dataDir, "kernel");
  try {
    const rec = await fetchInto(work, pkg, opts.signal);
    // Same release from another build, or a broken leftover: move it aside (removed with work).
    if (await exists(dir)) await rename(dir, join(work, "replaced"));
    await publishDir(join(work, "tree"), dir);
    log(`kernel ${rec.release} ready (PVH vmlinux extracted)`);
    return kernelAt(dir, rec);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Downloads and unpacks the package into work/tree, then adds modules.dep, vmlinux and the record. */
async function fetchInto(work: string, pkg: PackageRef, signal?: AbortSignal): Promise<KernelRecord> {
  const release = releaseOf(pkg.name);
  const tree = join(work, "tree");
  const deb = await downloadDeb(pkg, work, signal);
  await extractDeb(deb, tree, signal);
  const bzImagePath = join(tree, "boot", `vmlinuz-${release}`);
  if (!(await exists(bzImagePath)) || !(await exists(join(tree, "lib", "modules", release)))) {
    throw new HyperfleetError("GUEST_ASSETS_MISSING", `${pkg.name} has no boot/vmlinuz-${release} or lib/modules/${release}: not a Debian kernel image package?`);
  }
  // The .deb ships no modules.dep (its postinst runs depmod); generate it for this tree only.
  await runTool("depmod", ["-b", tree, release], { signal });
  const { vmlinux, hasPvhNote } = extractVmlinux(await readFile(bzImagePath));
  if (!hasPvhNote) {
    // Firecracker and QEMU's direct ELF boot both enter through the PVH note.
    throw new HyperfleetError("GUEST_ASSETS_MISSING", `${pkg.name}'s vmlinux has no PVH entry note: pick a kernel built with CONFIG_PVH`);
  }
  await writeFileAtomic(join(tree, "vmlinux"), vmlinux);
  const rec: KernelRecord = { package: pkg, release };
  await writeFileAtomic(join(tree, RECORD_FILE), `${JSON.stringify(rec, null, 2)}\n`);
  return rec;
}
