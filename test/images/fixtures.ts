/**
 * Test images, built here (no Docker Hub): a two-layer busybox image made with umoci (with a
 * whiteout, a non-root-owned directory and a full image config), multi-arch indexes made by hand,
 * and a Debian bookworm minbase image from debootstrap (the rootfs tarball is cached under
 * <data dir>/test-cache/ between runs). Pushed to a test registry with skopeo.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { chmod, chown, mkdir, mkdtemp, readFile, rename, rm, symlink, writeFile, copyFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const execFileP = promisify(execFile);

/** Runs a command, failing with its stderr. */
export async function sh(cmd: string, args: string[], opts: { timeoutMs?: number; cwd?: string } = {}): Promise<string> {
  try {
    const r = await execFileP(cmd, args, { maxBuffer: 64 << 20, timeout: opts.timeoutMs ?? 120_000, cwd: opts.cwd });
    return r.stdout;
  } catch (e) {
    const err = e as Error & { stderr?: string };
    throw new Error(`${cmd} ${args.join(" ")} failed: ${err.stderr ?? err.message}`, { cause: e });
  }
}

/** The busybox image's declared config, for assertions. */
export const BUSYBOX_CONFIG = {
  cmd: ["/bin/busybox", "sh", "-c", "echo hello"],
  env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", GREETING: "hello world" },
  workingDir: "/home/app",
  user: "1000:1000",
  exposedPorts: [{ port: 8080, protocol: "tcp" }],
};

/** A scratch dir for building images; removed by the caller. */
export function workDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), "hf-imgfix-"));
}

/**
 * Builds the busybox image in `<dir>/oci` under tag `bb`: layer 1 busybox + /etc/removed-me,
 * layer 2 deletes /etc/removed-me (a whiteout) and adds /home/app owned by 1000:1000.
 */
export async function buildBusyboxLayout(dir: string): Promise<string> {
  const layout = join(dir, "oci");
  await sh("umoci", ["init", "--layout", layout]);
  await sh("umoci", ["new", "--image", `${layout}:bb`]);
  const bundle = join(dir, "bundle");
  await sh("umoci", ["unpack", "--image", `${layout}:bb`, bundle]);
  const root = join(bundle, "rootfs");
  await mkdir(join(root, "bin"), { recursive: true });
  await copyFile("/bin/busybox", join(root, "bin/busybox"));
  await chmod(join(root, "bin/busybox"), 0o755);
  await symlink("busybox", join(root, "bin/sh"));
  await mkdir(join(root, "etc"));
  await writeFile(join(root, "etc/removed-me"), "gone in layer 2\n");
  await writeFile(join(root, "etc/os-release"), 'NAME="hf-busybox"\nID=hf-busybox\n');
  await sh("umoci", ["repack", "--image", `${layout}:bb`, bundle]);
  // repack diffs against the image the bundle was unpacked from: unpack again for a second layer.
  await rm(bundle, { recursive: true, force: true });
  await sh("umoci", ["unpack", "--image", `${layout}:bb`, bundle]);
  await rm(join(root, "etc/removed-me"));
  await mkdir(join(root, "home/app"), { recursive: true });
  await writeFile(join(root, "home/app/hello.txt"), "hi from the image\n");
  await chown(join(root, "home/app"), 1000, 1000);
  await chown(join(root, "home/app/hello.txt"), 1000, 1000);
  await sh("umoci", ["repack", "--image", `${layout}:bb`, bundle]);
  await rm(bundle, { recursive: true, force: true });
  const c = BUSYBOX_CONFIG;
  await sh("umoci", [
    "config",
    "--image",
    `${layout}:bb`,
    ...c.cmd.flatMap((a) => ["--config.cmd", a]),
    ...Object.entries(c.env).flatMap(([k, v]) => ["--config.env", `${k}=${v}`]),
    "--config.workingdir",
    c.workingDir,
    "--config.user",
    c.user,
    "--config.exposedports",
    "8080/tcp",
  ]);
  return layout;
}

/** Pushes `<layout>:<tag>` to `docker://<target>`; `--all` keeps an index with all its images. */
export async function push(layout: string, tag: string, target: string, opts: { all?: boolean; authFile?: string } = {}): Promise<void> {
  await sh("skopeo", ["copy", "--quiet", "--dest-tls-verify=false", ...(opts.all ? ["--all"] : []), ...(opts.authFile ? ["--dest-authfile", opts.authFile] : []), `oci:${layout}:${tag}`, `docker://${target}`]);
}

interface LayoutIndex {
  schemaVersion: number;
  manifests: { mediaType: string; digest: string; size: number; annotations?: Record<string, string>; platform?: object }[];
}

/**
 * Adds tag `name` to the layout: an image index over the given tags with the given platforms
 * (umoci cannot make indexes; the JSON is small enough to write by hand).
 */
export async function addIndex(layout: string, name: string, entries: { tag: string; architecture: string }[]): Promise<void> {
  const indexPath = join(layout, "index.json");
  const idx = JSON.parse(await readFile(indexPath, "utf8")) as LayoutIndex;
  const manifests = entries.map(({ tag, architecture }) => {
    const d = idx.manifests.find((m) => m.annotations?.["org.opencontainers.image.ref.name"] === tag);
    if (!d) throw new Error(`no tag ${tag}`);
    return { mediaType: d.mediaType, digest: d.digest, size: d.size, platform: { os: "linux", architecture } };
  });
  const blob = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests }));
  const hex = createHash("sha256").update(blob).digest("hex");
  await writeFile(join(layout, "blobs/sha256", hex), blob);
  idx.manifests.push({ mediaType: "application/vnd.oci.image.index.v1+json", digest: `sha256:${hex}`, size: blob.length, annotations: { "org.opencontainers.image.ref.name": name } });
  await writeFile(indexPath, JSON.stringify(idx));
}

/** Adds tag `bb-arm64`: the busybox image relabelled as linux/arm64 (only its config differs). */
export async function addArm64Variant(layout: string): Promise<void> {
  await sh("umoci", ["config", "--image", `${layout}:bb`, "--tag", "bb-arm64", "--architecture", "arm64", "--no-history"]);
}

/** Where test inputs that are slow to make are kept between runs. */
export function testCacheDir(): string {
  return join(process.env.HYPERFLEET_DATA_DIR ?? "/var/lib/hyperfleet", "test-cache");
}

/**
 * A tar of a Debian bookworm minbase rootfs (debootstrap from Debian's mirror, ~1 min the first
 * time; cached afterwards). Downloaded .debs and apt lists are left out, as in Docker's images.
 */
export async function debianRootfsTar(): Promise<string> {
  const dir = testCacheDir();
  const tar = join(dir, "debian-bookworm-minbase.tar");
  if (existsSync(tar)) return tar;
  await mkdir(dir, { recursive: true });
  const work = await mkdtemp(join(dir, "debootstrap-"));
  try {
    const root = join(work, "root");
    await sh("debootstrap", ["--variant=minbase", "bookworm", root, "http://deb.debian.org/debian"], { timeoutMs: 15 * 60_000 });
    await sh("sh", ["-c", 'rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/* "$1"/var/log/*.log', "sh", root]);
    await sh("tar", ["-C", root, "--numeric-owner", "--xattrs", "-cpf", join(work, "rootfs.tar"), "."], { timeoutMs: 10 * 60_000 });
    await rename(join(work, "rootfs.tar"), tar);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return tar;
}

/** Builds the Debian image in `<dir>/oci` under tag `debian` (one layer, Cmd bash). */
export async function buildDebianLayout(dir: string): Promise<string> {
  const tar = await debianRootfsTar();
  const layout = join(dir, "oci");
  if (!existsSync(layout)) await sh("umoci", ["init", "--layout", layout]);
  await sh("umoci", ["new", "--image", `${layout}:debian`]);
  await sh("umoci", ["raw", "add-layer", "--image", `${layout}:debian`, tar], { timeoutMs: 10 * 60_000 });
  await sh("umoci", ["config", "--image", `${layout}:debian`, "--config.cmd", "/bin/bash", "--config.env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]);
  return layout;
}

/** Adds tags `ev1`..`evN`: the busybox image with a distinct label each (same layers, new digests). */
export async function addLabelVariants(layout: string, n: number): Promise<string[]> {
  const tags: string[] = [];
  for (let i = 1; i <= n; i++) {
    await sh("umoci", ["config", "--image", `${layout}:bb`, "--tag", `ev${i}`, "--config.label", `variant=${i}`, "--no-history"]);
    tags.push(`ev${i}`);
  }
  return tags;
}

/** Adds tag `zeros`: busybox plus a 24 MiB file of zeros (a tiny download that unpacks big). */
export async function addZerosImage(layout: string, dir: string): Promise<void> {
  const bundle = join(dir, "zeros-bundle");
  await sh("umoci", ["unpack", "--image", `${layout}:bb`, bundle]);
  await writeFile(join(bundle, "rootfs/big.zero"), Buffer.alloc(24 << 20));
  // repack's tag names the result; the base is the image the bundle came from (bb).
  await sh("umoci", ["repack", "--image", `${layout}:zeros`, bundle]);
  await rm(bundle, { recursive: true, force: true });
}
