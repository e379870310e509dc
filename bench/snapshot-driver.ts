/**
 * Snapshot benchmark (QEMU): boot time and idle memory of a booted VM, then a clone snapshot (its
 * parts), restores of clones (spawn -> agent answers) and their memory, and a suspend round trip.
 * BENCH_SNAP_BOOT_ONLY=1 stops after the boots (to compare the memory backend before and after).
 * Human lines, then one JSON line.
 */
import { execFileSync } from "node:child_process";
import { statSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import type { QemuHandle } from "../src/vmm/qemu/handle.js";
import { guestMemfdPath } from "../src/vmm/qemu/migration.js";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadGuestAssets } from "../src/assets/index.js";
import { hostTscKhz } from "../src/vmm/host.js";
import { qcow2Overlays } from "../src/vmm/disks.js";
import { QemuDriver } from "../src/vmm/qemu/driver.js";
import { buildVmSpec, resolveBootPaths } from "../src/vmm/spec.js";
import { Vm } from "../src/vmm/vm.js";
import { sleep } from "../src/host/async.js";
import type { VmSpec } from "../src/core/ports/vmm-driver.js";
import { median } from "./stats.js";

const BOOTS = Number(process.env.BENCH_SNAP_BOOTS ?? 5);
const RESTORES = Number(process.env.BENCH_SNAP_RESTORES ?? 10);
const dataDir = process.env.HYPERFLEET_DATA_DIR ?? "/var/lib/hyperfleet";

/** Pss and Rss of a process in KiB (smaps_rollup). */
async function memKib(pid: number): Promise<{ pss: number; rss: number }> {
  const t = await readFile(`/proc/${pid}/smaps_rollup`, "utf8");
  const field = (n: string) => Number(new RegExp(`^${n}:\\s+(\\d+)`, "m").exec(t)?.[1] ?? NaN);
  return { pss: field("Pss"), rss: field("Rss") };
}

const assets = await loadGuestAssets(dataDir);
const driver = new QemuDriver({ accel: "tcg" });
const dirs: string[] = [];
async function newSpec(id: string): Promise<VmSpec> {
  const runDir = await mkdtemp(join(tmpdir(), "hf-bs-"));
  dirs.push(runDir);
  const boot = resolveBootPaths({}, assets);
  const spec = buildVmSpec({ id, vcpuCount: 1, memSizeMib: 256, boot, rootDisk: await qcow2Overlays.rootDisk(boot.rootfsPath, runDir), runDir, tscKhz: hostTscKhz() });
  srcSpecs.set(id, spec);
  return spec;
}
const srcSpecs = new Map<string, VmSpec>();
const live: Vm[] = [];
/** Boots or restores through `f` and keeps the VM for the final cleanup. */
async function track(f: Promise<Vm>): Promise<Vm> {
  const vm = await f;
  live.push(vm);
  return vm;
}

const out: Record<string, unknown> = {};
try {
  const bootMs: number[] = [];
  const pss: number[] = [];
  const rss: number[] = [];
  for (let i = 0; i < BOOTS; i++) {
    const spec = await newSpec(`vm_bench${i}`);
    const t0 = performance.now();
    const vm = await track(Vm.boot(driver, spec, 60_000));
    bootMs.push(performance.now() - t0);
    await sleep(2_000); // idle: what a booted VM settles at
    const m = await memKib(vm.pid);
    pss.push(m.pss);
    rss.push(m.rss);
    await vm.kill();
  }
  console.log(`boot p50 ${Math.round(median(bootMs))} ms (${bootMs.map(Math.round).join(" ")}); idle PSS ${median(pss)} KiB, RSS ${median(rss)} KiB`);
  Object.assign(out, { bootMsP50: Math.round(median(bootMs)), idlePssKibP50: median(pss), idleRssKibP50: median(rss) });
  if (!process.env.BENCH_SNAP_BOOT_ONLY) await snapshots();
} finally {
  // A failed run must not leave VMs behind.
  for (const v of live) await v.kill().catch(() => undefined);
  for (const d of dirs) await rm(d, { recursive: true, force: true });
}
console.log(JSON.stringify(out));

async function snapshots(): Promise<void> {
  const src = await track(Vm.boot(driver, await newSpec("vm_bsrc"), 60_000));
  await sleep(2_000);
  const snapDir = await mkdtemp(join(tmpdir(), "hf-bsnap-"));
  dirs.push(snapDir);
  const handle = src.handle as QemuHandle;
  const t0 = performance.now();
  const snap = await handle.snapshot({ dir: snapDir, purpose: "clone" });
  const cloneMs = performance.now() - t0;
  const parts = handle.lastSnapshotTimings!;
  const sizes = Object.fromEntries(["state", "memory", "disk.qcow2"].map((f) => [f, statSync(join(snapDir, f)).blocks * 512]));
  console.log(`clone snapshot ${cloneMs.toFixed(1)} ms (state ${parts.stateMs.toFixed(1)}, memory ${parts.memoryMs.toFixed(1)}, disk ${parts.diskMs.toFixed(1)}); ${JSON.stringify(sizes)} total ${snap.sizeBytes}`);
  // The two ways to copy the memfd, on the same paused VM.
  const memfd = await guestMemfdPath(src.pid);
  const cps: Record<string, number> = {};
  for (const mode of ["always", "auto", "always", "auto"]) {
    const t = performance.now();
    execFileSync("cp", [`--sparse=${mode}`, memfd, join(snapDir, `memcopy-${mode}`)]);
    cps[mode] = performance.now() - t;
    cps[`${mode}Bytes`] = statSync(join(snapDir, `memcopy-${mode}`)).blocks * 512;
    await rm(join(snapDir, `memcopy-${mode}`));
  }
  console.log(`memfd copy: ${JSON.stringify(cps)}`);
  await src.resume(10_000);
  const w = await src.agent!.exec(["sh", "-c", "echo after > /root/after && sync && cat /root/after"]);
  console.log(`source after cont: exit ${w.exitCode} ${w.stdout.toString().trim()}`);
  Object.assign(out, { cloneSnapshotMs: Math.round(cloneMs), parts, sizes, memfdCopy: cps });

  const restoreMs: number[] = [];
  const clonePss: number[] = [];
  const clones: Vm[] = [];
  for (let i = 0; i < RESTORES; i++) {
    const spec = await newSpec(`vm_bclone${i}`);
    spec.rootDisk = await qcow2Overlays.cloneDisk(snap.disk!, spec.runDir);
    const t = performance.now();
    const vm = await track(Vm.restore(driver, spec, snap, 30_000));
    await vm.agent!.ping();
    restoreMs.push(performance.now() - t);
    clones.push(vm);
  }
  await sleep(2_000);
  for (const c of clones) clonePss.push((await memKib(c.pid)).pss);
  for (const c of clones) await c.kill();
  console.log(`restore -> agent p50 ${median(restoreMs).toFixed(1)} ms (${restoreMs.map(Math.round).join(" ")}); idle clone PSS p50 ${median(clonePss)} KiB (${RESTORES} clones)`);
  Object.assign(out, { restoreMsP50: Math.round(median(restoreMs)), clonePssKibP50: median(clonePss) });

  const susDir = await mkdtemp(join(tmpdir(), "hf-bsus-"));
  dirs.push(susDir);
  const t1 = performance.now();
  const sus = await src.handle.snapshot({ dir: susDir, purpose: "suspend" });
  const saveMs = performance.now() - t1;
  await src.kill();
  const srcSpec = srcSpecs.get(src.handle.id)!;
  const t2 = performance.now();
  const back = await track(Vm.restore(driver, srcSpec, sus, 30_000));
  await back.agent!.ping();
  const loadMs = performance.now() - t2;
  console.log(`suspend save ${saveMs.toFixed(1)} ms, ${sus.sizeBytes} bytes; restore -> agent ${loadMs.toFixed(1)} ms`);
  Object.assign(out, { suspendSaveMs: Math.round(saveMs), suspendBytes: sus.sizeBytes, suspendRestoreMs: Math.round(loadMs) });
  await back.kill();
}
