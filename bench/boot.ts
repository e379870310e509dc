/**
 * Boot benchmark. Baseline ("floor"): bare qemu-system-x86_64 started by hand with the same kernel
 * and fastest options, whose minimal init (bench/floor/floor-init.c: load the console modules,
 * write one line) speaks first on the virtio-serial socket. Against it: our driver from spawn to
 * agent-ready (READY + HELLO handshake). Then exec and ping round trips and transfer rates.
 * Boots come in back-to-back pairs, alternating which goes first, so drift hits both equally; the
 * ratio is that of the medians, and the median of the per-pair ratios is printed beside it.
 * Human table first, JSON line last.
 */
import { spawn } from "node:child_process";
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { existsSync, readFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { initramfsFor, loadGuestAssets } from "../src/assets/index.js";
import { buildInitramfs } from "../src/assets/initramfs.js";
import { bootVm } from "../src/vmm/boot.js";
import { buildKernelArgs } from "../src/vmm/kernel-args.js";
import { hostTscKhz } from "../src/vmm/host.js";
import { createOverlay } from "../src/vmm/disks.js";
import { defaultDriver } from "../src/embed/wiring.js";
import { QemuDriver } from "../src/vmm/qemu/driver.js";
import { DEFAULT_TB_SIZE_MIB } from "../src/vmm/qemu/argv.js";
import { sleep } from "../src/host/async.js";
import { median } from "./stats.js";
import { printReport } from "./report.js";

/**
 * Boots of each kind. Single boots on these machines vary by +-15% (the host's own CPU comes and
 * goes), so medians need many: with 21 the ratio moves by about +-0.03 from run to run.
 */
const RUNS = Number(process.env.BENCH_BOOT_RUNS ?? 21);
/**
 * Guest memory of the timed boots, the floor's and ours alike: memory size alone moves the
 * kernel's own boot (struct page init before the initramfs is unpacked; 512 MiB costs ~30 ms of
 * guest time and ~60 ms spawn-to-ready over 256 MiB under TCG), which is not the driver's doing.
 */
const BOOT_MEM_MIB = 256;
/**
 * vCPUs of the timed boots, the floor's and ours alike: our default machine's. BENCH_BOOT_VCPUS=2
 * measures the 2-vCPU shape, with which the floor boots ~5-9% faster and our ratio is worse and
 * noisier on a 2-core host (MTTCG puts both vCPU threads on the cores the host side needs too).
 */
const BOOT_VCPUS = Number(process.env.BENCH_BOOT_VCPUS ?? 1);
const EXEC_CALLS = 200;
const XFER_MIB = 64;
const dataDir = process.env.HYPERFLEET_DATA_DIR ?? "/var/lib/hyperfleet";

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

async function connectWhenReady(path: string): Promise<Socket> {
  for (;;) {
    if (existsSync(path)) {
      const s = await new Promise<Socket | null>((resolve) => {
        const c = connect(path);
        c.once("connect", () => resolve(c));
        c.once("error", () => resolve(null));
      });
      if (s) return s;
    }
    await sleep(1);
  }
}

/** One floor boot: ms from spawn until "floor-ready" arrives on the socket. */
async function floorBoot(kernel: string, initrd: string, dir: string, accel: string): Promise<number> {
  const sock = join(dir, "floor.sock");
  await rm(sock, { force: true });
  const accelArgs = accel === "kvm" ? ["-accel", "kvm", "-cpu", "host"] : ["-accel", `tcg,tb-size=${DEFAULT_TB_SIZE_MIB}`, "-cpu", "max"];
  const argv = [
    "-nodefaults", "-no-user-config", "-nographic", "-no-reboot", ...accelArgs,
    "-M", "microvm,pit=off,pic=off,isa-serial=off,rtc=on", "-m", `${BOOT_MEM_MIB}M`, "-smp", String(BOOT_VCPUS),
    "-kernel", kernel, "-initrd", initrd,
    "-append", buildKernelArgs({ tscKhz: hostTscKhz() ?? undefined }).replace(/console=hvc0 /, ""),
    "-device", "virtio-serial-device,max_ports=2",
    "-chardev", `socket,id=a,path=${sock},server=on,wait=off`, "-device", "virtserialport,chardev=a,name=floor",
  ];
  const t0 = performance.now();
  const child = spawn("qemu-system-x86_64", argv, { stdio: "ignore" });
  const s = await connectWhenReady(sock);
  await new Promise<void>((resolve) => s.once("data", () => resolve()));
  const ms = performance.now() - t0;
  s.destroy();
  child.kill("SIGKILL");
  await new Promise((r) => child.once("exit", r));
  return ms;
}

function rssMib(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
}

async function main() {
  const assets = await loadGuestAssets(dataDir);
  const work = await mkdtemp(join(tmpdir(), "hf-bench-"));
  try {
    const driver = (await defaultDriver(dataDir)) as QemuDriver;
    const floorInit = join(work, "floor-init");
    execFileSync("musl-gcc", ["-static", "-O2", "-o", floorInit, "bench/floor/floor-init.c"]);
    // The kernel package is unpacked next to the vmlinux (src/assets/kernel.ts).
    const kernelModulesDir = join(dirname(assets.vmlinux), "lib", "modules", assets.kernelVersion);
    const floorInitrd = await buildInitramfs({ outDir: work, kernel: { release: assets.kernelVersion, modulesDir: kernelModulesDir }, initBinary: floorInit, modules: ["virtio_mmio", "virtio_console"] });

    const floor: number[] = [];
    const ours: number[] = [];
    const spec = (i: number, memMib = BOOT_MEM_MIB) => ({
      id: `bench-${i}`,
      vcpus: BOOT_VCPUS,
      memMib,
      kernelPath: assets.vmlinux,
      initrdPath: initramfsFor(assets, { nics: 0, vsock: false }),
      kernelArgs: buildKernelArgs({ hostname: "bench", tscKhz: hostTscKhz() ?? undefined }),
      rootDisk: { path: join(work, `disk-${i}.qcow2`), format: "qcow2" as const },
      runDir: join(work, `vm-${i}`),
    });
    const oursBoot = async (i: number): Promise<number> => {
      const s = spec(i);
      await createOverlay(assets.rootfs, s.rootDisk.path);
      const t0 = performance.now();
      const vm = await bootVm(driver, s, 30_000);
      const ms = performance.now() - t0;
      vm.agent.close();
      await vm.handle.kill();
      await vm.handle.cleanup({ all: true });
      return ms;
    };
    // Warm-up: page cache for kernel, initramfs and disk.
    await floorBoot(assets.vmlinux, floorInitrd.path, work, driver.accel);
    await oursBoot(-1);
    // Pairs, back to back, the first of each pair alternating (floor-ours, ours-floor, ...).
    for (let i = 0; i < RUNS; i++) {
      if (i % 2 === 0) floor.push(await floorBoot(assets.vmlinux, floorInitrd.path, work, driver.accel));
      ours.push(await oursBoot(i));
      if (i % 2 === 1) floor.push(await floorBoot(assets.vmlinux, floorInitrd.path, work, driver.accel));
    }

    // Round trips and transfers on one VM, with room for the 64 MiB file in /tmp (tmpfs).
    const s = spec(99, 512);
    await createOverlay(assets.rootfs, s.rootDisk.path);
    const vm = await bootVm(driver, s, 30_000);
    const execUs: number[] = [];
    for (let i = 0; i < 10; i++) await vm.agent.exec(["true"]);
    for (let i = 0; i < EXEC_CALLS; i++) {
      const t0 = performance.now();
      await vm.agent.exec(["true"]);
      execUs.push((performance.now() - t0) * 1000);
    }
    const pingUs: number[] = [];
    for (let i = 0; i < 50; i++) await vm.agent.ping();
    for (let i = 0; i < EXEC_CALLS; i++) pingUs.push(await vm.agent.ping());
    const data = randomBytes(XFER_MIB * 1024 * 1024);
    let t0 = performance.now();
    await vm.agent.writeFile("/tmp/xfer.bin", data);
    const upMiBs = XFER_MIB / ((performance.now() - t0) / 1000);
    t0 = performance.now();
    const back = await vm.agent.readFile("/tmp/xfer.bin");
    const downMiBs = XFER_MIB / ((performance.now() - t0) / 1000);
    const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
    if (sha(back) !== sha(data)) throw new Error("download differs from upload");
    await vm.agent.remove("/tmp/xfer.bin");
    // Idle footprint: a fresh VM (no transfer buffers in its page cache), 2 s after boot.
    const idle = spec(100);
    await createOverlay(assets.rootfs, idle.rootDisk.path);
    const idleVm = await bootVm(driver, idle, 30_000);
    await sleep(2_000);
    const idleRssMib = rssMib(idleVm.handle.pid);
    idleVm.agent.close();
    await idleVm.handle.kill();
    await idleVm.handle.cleanup({ all: true });
    vm.agent.close();
    await vm.handle.kill();
    await vm.handle.cleanup({ all: true });

    const figures = {
      accel: driver.accel,
      runs: RUNS,
      vcpus: BOOT_VCPUS,
      mem_mib: BOOT_MEM_MIB,
      floor_boot_ms_median: +median(floor).toFixed(1),
      driver_boot_ms_median: +median(ours).toFixed(1),
      boot_ratio: +(median(ours) / median(floor)).toFixed(3),
      boot_ratio_paired_median: +median(ours.map((x, i) => x / floor[i]!)).toFixed(3),
      floor_boot_ms: floor.map((x) => +x.toFixed(1)),
      driver_boot_ms: ours.map((x) => +x.toFixed(1)),
      exec_rtt_us_median: +median(execUs).toFixed(0),
      exec_rtt_us_p99: +pct(execUs, 99).toFixed(0),
      ping_rtt_us_median: +median(pingUs).toFixed(0),
      ping_rtt_us_p99: +pct(pingUs, 99).toFixed(0),
      upload_mib_s: +upMiBs.toFixed(1),
      download_mib_s: +downMiBs.toFixed(1),
      transfer_mib: XFER_MIB,
      idle_vm_rss_mib: +idleRssMib.toFixed(1),
      tb_size_mib: DEFAULT_TB_SIZE_MIB,
    };
    const rows: Array<[string, string]> = [
      ["accelerator", figures.accel],
      ["vCPUs / memory of the timed boots", `${BOOT_VCPUS} / ${BOOT_MEM_MIB} MiB`],
      [`floor: bare qemu + minimal init, spawn -> first line (median of ${RUNS})`, `${figures.floor_boot_ms_median} ms`],
      [`hyperfleet driver: spawn -> agent ready (median of ${RUNS})`, `${figures.driver_boot_ms_median} ms`],
      ["ratio driver / floor (target <= 1.15)", `${figures.boot_ratio}`],
      ["  the same, median of the per-pair ratios", `${figures.boot_ratio_paired_median}`],
      [`exec round trip of \`true\` (median / p99 of ${EXEC_CALLS})`, `${figures.exec_rtt_us_median} / ${figures.exec_rtt_us_p99} us`],
      [`agent channel ping round trip (median / p99 of ${EXEC_CALLS})`, `${figures.ping_rtt_us_median} / ${figures.ping_rtt_us_p99} us`],
      [`upload ${XFER_MIB} MiB`, `${figures.upload_mib_s} MiB/s`],
      [`download ${XFER_MIB} MiB`, `${figures.download_mib_s} MiB/s`],
      [`idle VM RSS (-m ${BOOT_MEM_MIB}, ${BOOT_VCPUS} vCPU, tb-size ${DEFAULT_TB_SIZE_MIB} MiB)`, `${figures.idle_vm_rss_mib} MiB`],
    ];
    printReport(null, rows, figures, "");
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

await main();
