/**
 * Image benchmark. Baseline: the plain pipeline run by hand on the same image from the same
 * loopback registry: `skopeo copy` -> `umoci unpack` -> `mkfs.ext4 -d` (same disk size as ours).
 * Against it: ImageService.pull on an empty cache (resolve, download with progress, unpack, inject
 * the agent, size, mkfs, publish). Runs alternate baseline/service so drift hits both equally.
 * Then the warm path (a cached image: local lookup, and `policy: "always"` with one manifest
 * request), and the host disk used by ten VMs (ten qcow2 overlays on the one image disk) against
 * ten private copies. Image: Debian bookworm minbase (BENCH_IMAGES_IMAGE=busybox for a quick run).
 * Human table first, JSON line last.
 */
import { execFileSync } from "node:child_process";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ImageService } from "../src/images/service.js";
import { createOverlay } from "../src/vmm/disks.js";
import { buildBusyboxLayout, buildDebianLayout, push, sh, workDir } from "../test/images/fixtures.js";
import { AGENT } from "../test/images/harness.js";
import { startRegistry } from "../test/images/registry.js";
import { median } from "./stats.js";
import { printReport } from "./report.js";

const RUNS = Number(process.env.BENCH_IMAGES_RUNS ?? 3);
const WARM_CALLS = 2000;
const IMAGE = process.env.BENCH_IMAGES_IMAGE === "busybox" ? "busybox" : "debian";

const allocated = async (p: string) => (await stat(p)).blocks * 512;
const MiB = 1024 * 1024;

/** The by-hand pipeline; returns ms. */
async function baseline(ref: string, sizeMib: number): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), "hf-bench-img-"));
  try {
    const t0 = performance.now();
    await sh("skopeo", ["copy", "--quiet", "--src-tls-verify=false", `docker://${ref}`, `oci:${dir}/oci:img`], { timeoutMs: 600_000 });
    await sh("umoci", ["--log", "error", "unpack", "--image", `${dir}/oci:img`, `${dir}/bundle`], { timeoutMs: 600_000 });
    await sh("mkfs.ext4", ["-q", "-F", "-d", `${dir}/bundle/rootfs`, `${dir}/disk.ext4`, `${sizeMib}M`], { timeoutMs: 600_000 });
    return performance.now() - t0;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** ImageService.pull on an empty cache; returns ms and the disk size it chose. */
async function servicePull(ref: string, insecure: string): Promise<{ ms: number; sizeMib: number }> {
  const cacheDir = await mkdtemp(join(tmpdir(), "hf-bench-cache-"));
  const images = await ImageService.open({ cacheDir, maxCacheSize: 100 * 2 ** 30, agentBinary: AGENT, insecureRegistries: [insecure] });
  try {
    const t0 = performance.now();
    const img = await images.pull(ref);
    return { ms: performance.now() - t0, sizeMib: img.diskSizeMib };
  } finally {
    await images.close();
    await rm(cacheDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const registry = await startRegistry();
  const fixtures = await workDir();
  const cacheDir = await mkdtemp(join(tmpdir(), "hf-bench-cache-"));
  try {
    const layout = IMAGE === "debian" ? await buildDebianLayout(fixtures) : await buildBusyboxLayout(fixtures);
    const ref = `${registry.host}/bench/${IMAGE}:1`;
    await push(layout, IMAGE === "debian" ? "debian" : "bb", ref);

    const ours: number[] = [];
    const base: number[] = [];
    let sizeMib = 0;
    for (let i = 0; i < RUNS; i++) {
      const s = await servicePull(ref, registry.host);
      sizeMib = s.sizeMib;
      ours.push(s.ms);
      base.push(await baseline(ref, sizeMib));
    }

    // Warm: one long-lived service with the image cached.
    const images = await ImageService.open({ cacheDir, maxCacheSize: 100 * 2 ** 30, agentBinary: AGENT, insecureRegistries: [registry.host] });
    const img = await images.pull(ref);
    const warm: number[] = [];
    for (let i = 0; i < WARM_CALLS; i++) {
      const t0 = performance.now();
      await images.pull(ref);
      warm.push(performance.now() - t0);
    }
    const always: number[] = [];
    for (let i = 0; i < 10; i++) {
      const t0 = performance.now();
      await images.pull(ref, { policy: "always" });
      always.push(performance.now() - t0);
    }

    // Ten VMs' disks: ten overlays on the one image disk.
    const vmsDir = join(cacheDir, "vms");
    execFileSync("mkdir", ["-p", vmsDir]);
    for (let i = 0; i < 10; i++) await createOverlay(img.diskPath, join(vmsDir, `vm${i}.qcow2`));
    const diskAlloc = await allocated(img.diskPath);
    const diskApparent = (await stat(img.diskPath)).size;
    let overlays = 0;
    for (let i = 0; i < 10; i++) overlays += await allocated(join(vmsDir, `vm${i}.qcow2`));
    const duOverlays = Number(execFileSync("du", ["-sB1", vmsDir]).toString().split("\t")[0]);
    const blobs = Number(execFileSync("du", ["-sB1", join(cacheDir, "blobs")]).toString().split("\t")[0]);
    await images.close();

    const r = {
      image: IMAGE,
      runs: RUNS,
      compressed_bytes: img.sizeBytes - diskAlloc,
      disk_size_mib: img.diskSizeMib,
      cold_service_ms: Math.round(median(ours)),
      cold_baseline_ms: Math.round(median(base)),
      cold_ratio: +(median(ours) / median(base)).toFixed(2),
      warm_get_us: +(median(warm) * 1000).toFixed(1),
      warm_get_p99_us: +([...warm].sort((a, b) => a - b)[Math.floor(warm.length * 0.99)]! * 1000).toFixed(1),
      warm_always_ms: +median(always).toFixed(1),
      warm_speedup_vs_cold: Math.round(median(ours) / median(warm)),
      image_disk_allocated_bytes: diskAlloc,
      image_disk_apparent_bytes: diskApparent,
      blob_bytes: blobs,
      ten_overlays_bytes: overlays,
      ten_overlays_du_bytes: duOverlays,
      ten_vms_bytes: diskAlloc + overlays,
      ten_copies_bytes: 10 * diskAlloc,
      ten_vms_ratio_vs_copies: +((diskAlloc + overlays) / (10 * diskAlloc)).toFixed(3),
    };
    const rows: [string, string][] = [
      ["image", `${IMAGE} (${(r.compressed_bytes / MiB).toFixed(1)} MiB compressed, ${r.disk_size_mib} MiB disk)`],
      ["cold pull+convert, by hand (skopeo, umoci, mkfs)", `${r.cold_baseline_ms} ms (median of ${RUNS})`],
      ["cold pull+convert, ImageService.pull", `${r.cold_service_ms} ms (x${r.cold_ratio} baseline)`],
      ["warm get disk (cached, no network)", `${r.warm_get_us} us median, ${r.warm_get_p99_us} us p99 (${WARM_CALLS} calls)`],
      ["warm, policy always (1 manifest request)", `${r.warm_always_ms} ms`],
      ["image disk on host (allocated / apparent)", `${(diskAlloc / MiB).toFixed(1)} / ${(diskApparent / MiB).toFixed(0)} MiB`],
      ["blobs kept for re-use", `${(blobs / MiB).toFixed(1)} MiB`],
      ["ten VMs: disk + 10 overlays", `${((diskAlloc + overlays) / MiB).toFixed(1)} MiB (overlays ${(overlays / 1024).toFixed(0)} KiB total)`],
      ["ten VMs with private copies", `${(r.ten_copies_bytes / MiB).toFixed(1)} MiB (x${(1 / r.ten_vms_ratio_vs_copies).toFixed(1)} more)`],
    ];
    printReport("\nImage benchmark", rows, r);
  } finally {
    await registry.stop();
    await rm(fixtures, { recursive: true, force: true });
    await rm(cacheDir, { recursive: true, force: true });
  }
}

await main();
