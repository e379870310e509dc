/**
 * Per-VM disk cost on this host. Baseline: the qcow2 overlay QEMU uses (`qemu-img create` over the
 * shared base). Against it: Firecracker's raw copy (`rawCopies`: a reflink where the file system
 * can, else a sparse copy; the method the file system gave is printed), and for the base rootfs the
 * plain full copy `rawCopies` made before (every byte written). Two images: the base rootfs from
 * `npm run setup`, and a bigger sparse image (BENCH_DISKS_BIG_MIB, default 4096, with 64 MiB of data
 * spread over it). Copies are made in BENCH_DISKS_DIR (default: `<data dir>/tmp`, the run dirs'
 * file system). Human table first, JSON line last.
 */
import { randomBytes } from "node:crypto";
import { copyFile, mkdir, mkdtemp, open, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { loadGuestAssets } from "../src/assets/index.js";
import { copyDisk, type CopyMethod } from "../src/vmm/disk-copy.js";
import { createOverlay, rawCopies } from "../src/vmm/disks.js";
import { median, round } from "./stats.js";

const RUNS = Number(process.env.BENCH_DISKS_RUNS ?? 5);
const BIG_MIB = Number(process.env.BENCH_DISKS_BIG_MIB ?? 4096);
const dataDir = process.env.HYPERFLEET_DATA_DIR ?? "/var/lib/hyperfleet";
const MiB = 1024 * 1024;

const allocated = async (p: string) => (await stat(p)).blocks * 512;

interface Row {
  image: string;
  way: string;
  msP50: number;
  allocatedMib: number;
  method?: CopyMethod;
}

/** Runs `make(dst)` RUNS times into fresh paths; median time and allocated bytes. */
async function measure(dir: string, image: string, way: string, runs: number, make: (runDir: string) => Promise<void>): Promise<Row> {
  const ms: number[] = [];
  const bytes: number[] = [];
  for (let i = 0; i < runs; i++) {
    const runDir = join(dir, `${way}-${i}`);
    await mkdir(runDir, { recursive: true });
    const t0 = performance.now();
    await make(runDir);
    ms.push(performance.now() - t0);
    const file = way === "qcow2-overlay" ? join(runDir, "rootfs.qcow2") : join(runDir, "rootfs.ext4");
    bytes.push(await allocated(file));
    await rm(runDir, { recursive: true, force: true });
  }
  return { image, way, msP50: round(median(ms), 1), allocatedMib: round(median(bytes) / MiB, 2) };
}

/** A sparse image of `mib` MiB with 64 one-MiB chunks of random data spread evenly over it. */
async function bigSparse(path: string, mib: number): Promise<void> {
  const f = await open(path, "w");
  try {
    await f.truncate(mib * MiB);
    for (let i = 0; i < 64; i++) await f.write(randomBytes(MiB), 0, MiB, Math.floor((i * mib) / 64) * MiB);
    await f.sync();
  } finally {
    await f.close();
  }
}

const assets = await loadGuestAssets(dataDir);
const parent = process.env.BENCH_DISKS_DIR ?? join(dataDir, "tmp");
await mkdir(parent, { recursive: true });
const dir = await mkdtemp(join(parent, "hf-bench-disks-"));
const rows: Row[] = [];
try {
  const big = join(dir, "big.img");
  await bigSparse(big, BIG_MIB);
  const images: [string, string][] = [["base-rootfs", assets.rootfs], [`sparse-${BIG_MIB}MiB`, big]];
  for (const [name, base] of images) {
    rows.push(await measure(dir, name, "qcow2-overlay", RUNS, (d) => createOverlay(base, join(d, "rootfs.qcow2"))));
    // rawCopies does not say how it copied: one copy into a scratch file, untimed, does.
    const probe = join(dir, "probe");
    const method = await copyDisk(base, probe);
    await rm(probe);
    const row = await measure(dir, name, "raw-copy", RUNS, async (d) => void (await rawCopies.rootDisk(base, d)));
    rows.push({ ...row, method });
  }
  // What rawCopies did before: every byte written (one image, fewer runs: it is the slow one).
  rows.push(await measure(dir, "base-rootfs", "full-copy", Math.min(RUNS, 3), (d) => copyFile(assets.rootfs, join(d, "rootfs.ext4"))));
} finally {
  await rm(dir, { recursive: true, force: true });
}

const baseSize = (await stat(assets.rootfs)).size / MiB;
console.log(`per-VM disk cost (${RUNS} runs, median; base rootfs ${baseSize} MiB, ${round((await allocated(assets.rootfs)) / MiB, 1)} MiB allocated; in ${parent})`);
console.log("image                way            method   ms p50   allocated MiB   x time vs qcow2");
const out: Record<string, unknown> = {};
for (const r of rows) {
  const q = rows.find((x) => x.image === r.image && x.way === "qcow2-overlay")!;
  const ratio = round(r.msP50 / q.msP50, 2);
  console.log(`${r.image.padEnd(20)} ${r.way.padEnd(14)} ${(r.method ?? "-").padEnd(8)} ${String(r.msP50).padStart(7)} ${String(r.allocatedMib).padStart(15)} ${String(ratio).padStart(17)}`);
  out[`${r.image}.${r.way}`] = { ms: r.msP50, allocatedMib: r.allocatedMib, timeVsQcow2: ratio, ...(r.method ? { method: r.method } : {}) };
}
console.log(JSON.stringify(out));
