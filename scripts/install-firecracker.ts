/**
 * `npm run setup -- --firecracker`: installs the pinned Firecracker release (the firecracker and
 * jailer binaries) into a directory on PATH, /usr/local/bin by default. The release tarball's
 * SHA-256 is pinned here, next to the version, and checked before anything is unpacked: a tarball
 * that does not match (a changed asset, a cut-short download) installs nothing. A host that cannot
 * download is told so, and how to install from a tarball fetched elsewhere (`--archive`).
 *
 *   node --import tsx scripts/install-firecracker.ts [--prefix DIR] [--archive FILE] [--url-base URL]
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { chmod, copyFile, mkdir, mkdtemp, rename, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { promisify } from "node:util";

const run = promisify(execFile);

/** The release our contract spec (specs/firecracker/firecracker.yaml) is. */
export const FIRECRACKER_VERSION = "v1.16.1";
/**
 * SHA-256 of the release tarballs as published with the release (`<asset>.sha256.txt`). Change
 * them together with the version, after reading the new release's checksum files.
 */
export const RELEASE_SHA256: Record<FcArch, string> = {
  x86_64: "382a02a869e4d6d5cb14c40577f9545e8458021ea8b0b2d3fc10ec14d9c242e6",
  aarch64: "8d0e69f6d6f9a1724551f607f18504052c16c1828ee3d4d7b6e6c73380871e0e",
};
export const RELEASE_URL_BASE = "https://github.com/firecracker-microvm/firecracker/releases/download";
export const DEFAULT_PREFIX = "/usr/local/bin";
/** The release tarball is about 20 MiB; anything far bigger is not it. */
const MAX_DOWNLOAD = 256 * 1024 * 1024;

export type FcArch = "x86_64" | "aarch64";

/** Firecracker's name for Node's architecture; null where there is no release. */
export function releaseArch(nodeArch: string = process.arch): FcArch | null {
  return nodeArch === "x64" ? "x86_64" : nodeArch === "arm64" ? "aarch64" : null;
}

/** The release's asset name and the two members we install from it. */
export function releaseAsset(version: string, arch: FcArch): { tarball: string; firecracker: string; jailer: string } {
  const dir = `release-${version}-${arch}`;
  return { tarball: `firecracker-${version}-${arch}.tgz`, firecracker: `${dir}/firecracker-${version}-${arch}`, jailer: `${dir}/jailer-${version}-${arch}` };
}

/** Why an install did not happen; the message says what to do. */
export class InstallError extends Error {
  constructor(
    readonly reason: "unsupported-arch" | "download-failed" | "checksum-mismatch" | "bad-archive",
    message: string,
  ) {
    super(message);
  }
}

export interface InstallOptions {
  arch: FcArch;
  /** Where `firecracker` and `jailer` go. */
  prefix: string;
  version?: string;
  /** Expected SHA-256 of the tarball; defaults to the pinned one of `arch`. */
  sha256?: string;
  /** Release download base (tests: a loopback server). */
  urlBase?: string;
  /** A tarball already on this host (air-gapped installs), checked the same way. */
  archive?: string;
  timeoutMs?: number;
  log?: (line: string) => void;
}

export interface InstallResult {
  firecracker: string;
  jailer: string;
  sha256: string;
  source: string;
}

/**
 * Downloads (or takes `archive`), checks the SHA-256, then unpacks only the two binaries and
 * installs them as `<prefix>/firecracker` and `<prefix>/jailer` (each written under a temporary
 * name and renamed, so a failure never leaves half a binary). Throws InstallError.
 */
export async function installFirecracker(o: InstallOptions): Promise<InstallResult> {
  const version = o.version ?? FIRECRACKER_VERSION;
  const expected = (o.sha256 ?? RELEASE_SHA256[o.arch]).toLowerCase();
  const asset = releaseAsset(version, o.arch);
  const log = o.log ?? (() => undefined);
  const work = await mkdtemp(join(tmpdir(), "hf-fc-install-"));
  try {
    let tarball: string;
    let source: string;
    if (o.archive) {
      tarball = o.archive;
      source = o.archive;
    } else {
      source = `${o.urlBase ?? RELEASE_URL_BASE}/${version}/${asset.tarball}`;
      tarball = join(work, asset.tarball);
      log(`downloading ${source}`);
      await download(source, tarball, o.timeoutMs ?? 120_000);
    }
    const actual = await sha256File(tarball);
    if (actual !== expected) {
      throw new InstallError(
        "checksum-mismatch",
        `${source} has SHA-256 ${actual}, but ${asset.tarball} of Firecracker ${version} is pinned to ${expected} (scripts/install-firecracker.ts): refusing to install it. A cut-short download or a changed release asset both end here; nothing was unpacked or installed.`,
      );
    }
    log(`SHA-256 ${actual} matches the pinned checksum of ${asset.tarball}`);
    const unpacked = join(work, "unpacked");
    await mkdir(unpacked);
    try {
      await run("tar", ["-xzf", tarball, "-C", unpacked, "--no-same-owner", asset.firecracker, asset.jailer]);
    } catch (e) {
      throw new InstallError("bad-archive", `${asset.tarball} does not hold ${asset.firecracker} and ${asset.jailer}: ${(e as { stderr?: string }).stderr?.trim() ?? String(e)}`);
    }
    await mkdir(o.prefix, { recursive: true });
    const targets = { firecracker: join(o.prefix, "firecracker"), jailer: join(o.prefix, "jailer") };
    const staged: [string, string][] = [];
    for (const [name, member] of [["firecracker", asset.firecracker], ["jailer", asset.jailer]] as const) {
      const src = join(unpacked, member);
      if (!(await stat(src)).isFile()) throw new InstallError("bad-archive", `${member} in ${asset.tarball} is not a file`);
      const tmp = `${targets[name]}.${process.pid}.tmp`;
      await copyFile(src, tmp);
      await chmod(tmp, 0o755);
      staged.push([tmp, targets[name]]);
    }
    for (const [tmp, target] of staged) await rename(tmp, target);
    return { ...targets, sha256: actual, source };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Streams `url` into `dst`; InstallError("download-failed") for an unreachable host, an HTTP error or a cut-short body. */
async function download(url: string, dst: string, timeoutMs: number): Promise<void> {
  const fail = (why: string, cause?: unknown) =>
    new InstallError(
      "download-failed",
      `cannot download ${url}: ${why}. If this host has no internet access, fetch that file elsewhere and run \`node --import tsx scripts/install-firecracker.ts --archive <file>\` (it is checked against the same pinned SHA-256).${cause ? ` (${describe(cause)})` : ""}`,
    );
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: "follow" });
  } catch (e) {
    throw fail("the server could not be reached", e);
  }
  if (!res.ok || !res.body) throw fail(`HTTP ${res.status}`);
  const declared = Number(res.headers.get("content-length") ?? NaN);
  if (declared > MAX_DOWNLOAD) throw fail(`it is ${declared} bytes, more than a Firecracker release`);
  let received = 0;
  const counted = Readable.fromWeb(res.body as import("node:stream/web").ReadableStream).on("data", (c: Buffer) => {
    received += c.length;
    if (received > MAX_DOWNLOAD) counted.destroy(new Error(`more than ${MAX_DOWNLOAD} bytes`));
  });
  try {
    await pipeline(counted, createWriteStream(dst));
  } catch (e) {
    throw fail(`the download broke off after ${received} bytes`, e);
  }
  if (Number.isFinite(declared) && received !== declared) throw fail(`the download was cut short: ${received} of ${declared} bytes`);
}

async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const c of createReadStream(path)) h.update(c as Buffer);
  return h.digest("hex");
}

function describe(e: unknown): string {
  const err = e as { message?: string; cause?: { code?: string; message?: string } };
  return [err.message, err.cause?.code ?? err.cause?.message].filter(Boolean).join(": ");
}

/** The installed version when `<prefix>/firecracker` and `<prefix>/jailer` both answer `--version`. */
export async function installedVersion(prefix: string): Promise<string | null> {
  try {
    const fc = (await run(join(prefix, "firecracker"), ["--version"], { timeout: 10_000 })).stdout;
    const jl = (await run(join(prefix, "jailer"), ["--version"], { timeout: 10_000 })).stdout;
    const v = /Firecracker (v\d+\.\d+\.\d+)/.exec(fc)?.[1];
    return v && jl.includes(v) ? v : null;
  } catch {
    return null;
  }
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<number> {
  const arch = releaseArch();
  if (arch === null) {
    console.error(`firecracker: no Firecracker release for ${process.arch} (x86_64 and aarch64 only); not installed`);
    return 1;
  }
  const prefix = arg("--prefix") ?? DEFAULT_PREFIX;
  const have = await installedVersion(prefix);
  if (have === FIRECRACKER_VERSION && !arg("--archive")) {
    console.log(`Firecracker ${have} and its jailer are already in ${prefix}`);
  } else {
    try {
      const r = await installFirecracker({ arch, prefix, archive: arg("--archive"), urlBase: arg("--url-base"), log: (l) => console.log(l) });
      console.log(`installed Firecracker ${FIRECRACKER_VERSION} (${arch}): ${r.firecracker}, ${r.jailer}`);
    } catch (e) {
      if (!(e instanceof InstallError)) throw e;
      console.error(`firecracker: ${e.message}`);
      return 1;
    }
  }
  // Firecracker needs KVM; say what this host offers (the daemon's probe decides, docs/firecracker.md).
  try {
    await run("sh", ["-c", "test -r /dev/kvm && test -w /dev/kvm"]);
    console.log("/dev/kvm is there and this user can open it");
  } catch {
    console.log("note: /dev/kvm is missing or not read-writable for this user: Firecracker cannot start VMs here (see docs/firecracker.md)");
  }
  return 0;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.exitCode = await main();
}
