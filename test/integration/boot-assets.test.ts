/**
 * Boots the real guest kernel with our initramfs and a base root disk in QEMU (TCG) and checks
 * that hf-init gets to the root disk and execs the init there, loading the drivers of exactly the
 * devices the VM has. The init is a tiny static test program (or the root disk's busybox shell),
 * so this does not depend on the agent.
 *
 * Needs the kernel fetched by `npm run setup` in HYPERFLEET_DATA_DIR (default /var/lib/hyperfleet),
 * qemu-system-x86_64 and musl-gcc. hf-init is compiled from guest/{init,common}/*.c for the test, so it
 * always tests the current source.
 */
import { after, before, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { findStaticBusybox } from "../../src/assets/busybox.js";
import { buildInitramfs } from "../../src/assets/initramfs.js";
import { findCachedKernel, type GuestKernel } from "../../src/assets/kernel.js";
import { buildRootfs } from "../../src/assets/rootfs.js";

const INIT_SRC_DIR = fileURLToPath(new URL("../../guest/init/", import.meta.url));
const COMMON_SRC_DIR = fileURLToPath(new URL("../../guest/common/", import.meta.url));
const DATA_DIR = process.env.HYPERFLEET_DATA_DIR ?? "/var/lib/hyperfleet";
const CFLAGS = ["-static", "-O2", "-Wall", "-Wextra", "-Werror", "-std=gnu11"];
const BOOT_TIMEOUT_MS = 30_000;

/**
 * The test init: reports what it sees as PID 1 on the console (and the loaded modules, sorted),
 * then powers off. With `hftest.late` on the kernel command line it lists the modules again 2 s
 * later, after hf-init's background child has loaded the `late` ones.
 */
const TEST_INIT_C = String.raw`
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>
static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }
static void modules(char *out, size_t cap) {
	static char buf[8192];
	char *names[64];
	size_t len = 0, n = 0;
	int fd = open("/proc/modules", O_RDONLY);
	ssize_t r;
	while (fd >= 0 && (r = read(fd, buf + len, sizeof buf - 1 - len)) > 0) len += (size_t)r;
	if (fd >= 0) close(fd);
	buf[len] = 0;
	for (char *l = strtok(buf, "\n"); l && n < 64; l = strtok(NULL, "\n")) { l[strcspn(l, " ")] = 0; names[n++] = l; }
	qsort(names, n, sizeof names[0], cmp);
	out[0] = 0;
	for (size_t i = 0; i < n; i++) { strncat(out, names[i], cap - strlen(out) - 2); strcat(out, ","); }
}
int main(void) {
	char host[64] = "?", mods[1024], cmdline[4096] = "", lo[16] = "?";
	int fd = open("/etc/hostname", O_RDONLY);
	if (fd >= 0) { ssize_t n = read(fd, host, sizeof host - 1); if (n > 0) host[n - 1] = 0; close(fd); }
	fd = open("/proc/cmdline", O_RDONLY);
	if (fd >= 0) { ssize_t n = read(fd, cmdline, sizeof cmdline - 1); if (n > 0) cmdline[n] = 0; close(fd); }
	fd = open("/sys/class/net/lo/flags", O_RDONLY);
	if (fd >= 0) { ssize_t n = read(fd, lo, sizeof lo - 1); if (n > 0) lo[n] = 0; close(fd); }
	struct stat st;
	int w = open("/tmp/probe", O_CREAT | O_WRONLY, 0600);
	modules(mods, sizeof mods);
	printf("HF_TEST_INIT pid=%d hostname=%s vda=%s proc=%s sys=%s root=%s lo=%s modules=%s\n", getpid(), host,
	       stat("/dev/vda", &st) == 0 && S_ISBLK(st.st_mode) ? "blk" : "missing",
	       access("/proc/self", F_OK) == 0 ? "mounted" : "unmounted",
	       access("/sys/kernel", F_OK) == 0 ? "mounted" : "unmounted",
	       w >= 0 ? "rw" : errno == EROFS ? "ro" : strerror(errno), strtoul(lo, NULL, 16) & 1 ? "up" : "down", mods);
	if (strstr(cmdline, "hftest.late")) {
		sleep(2);
		modules(mods, sizeof mods);
		char rcu[8] = "?";
		fd = open("/sys/kernel/rcu_expedited", O_RDONLY);
		if (fd >= 0) { ssize_t n = read(fd, rcu, sizeof rcu - 1); if (n > 0) rcu[n - 1] = 0; close(fd); }
		printf("HF_TEST_LATE rcu_expedited=%s modules=%s\n", rcu, mods);
	}
	fflush(stdout);
	tcdrain(1);
	reboot(RB_POWER_OFF);
	return 1;
}
`;

function has(cmd: string, arg = "--version"): boolean {
  return spawnSync(cmd, [arg], { stdio: "ignore" }).status === 0;
}

/** Host TSC rate in kHz, so the guest skips its (slow, erratic under TCG) calibration. */
function hostTscKhz(): number | null {
  const m = /^cpu MHz\s*:\s*([\d.]+)/m.exec(readFileSync("/proc/cpuinfo", "utf8"));
  return m ? Math.round(Number(m[1]) * 1000) : null;
}

const kernel: GuestKernel | null = await findCachedKernel(DATA_DIR);
const skip = !has("qemu-system-x86_64")
  ? "qemu-system-x86_64 is not installed"
  : !has("musl-gcc", "-v")
    ? "musl-gcc is not installed (apt-get install musl-tools)"
    : kernel === null
      ? `no guest kernel in ${DATA_DIR}: run \`npm run setup\``
      : false;

let work = "";
let initramfs = "";
let rootfs = "";
const children = new Set<ChildProcess>();

before(async () => {
  if (skip || kernel === null) return;
  work = await mkdtemp(join(tmpdir(), "hf-test-"));
  const cc = (out: string, srcs: string[]) => {
    const r = spawnSync("musl-gcc", [...CFLAGS, "-o", out, ...srcs], { encoding: "utf8" });
    assert.equal(r.status, 0, `musl-gcc ${srcs.join(" ")}: ${r.stderr}`);
  };
  const sources = (dir: string) => readdirSync(dir).filter((f) => f.endsWith(".c")).map((f) => join(dir, f));
  cc(join(work, "hf-init"), ["-I", COMMON_SRC_DIR, ...sources(INIT_SRC_DIR), ...sources(COMMON_SRC_DIR)]);
  await writeFile(join(work, "test-init.c"), TEST_INIT_C);
  cc(join(work, "test-init"), [join(work, "test-init.c")]);
  initramfs = (await buildInitramfs({ outDir: work, kernel, initBinary: join(work, "hf-init") })).path;
  const busybox = await findStaticBusybox(work);
  rootfs = (await buildRootfs({ outDir: work, dataDir: work, agentBinary: join(work, "test-init"), busybox, sizeMiB: 64 })).path;
});

after(async () => {
  for (const c of children) c.kill("SIGKILL"); // only ours, and only if a test left one behind
  if (work) await rm(work, { recursive: true, force: true });
});

/** The fast-boot kernel arguments from HOST-NOTES plus ours; `pci=off` unless the VM has a PCI bus. */
function kernelArgs(extra: string, pci = false): string {
  const tsc = hostTscKhz();
  return [
    "console=hvc0 root=/dev/vda quiet cryptomgr.notests init_on_alloc=0 mitigations=off nokaslr tsc=reliable",
    `no_timer_check audit=0 ${pci ? "" : "pci=off "}8250.nr_uarts=0 panic=-1`,
    tsc ? `tsc_early_khz=${tsc}` : "",
    extra,
  ]
    .filter(Boolean)
    .join(" ");
}

interface BootResult {
  output: string;
  /** Spawn to the first output line matching `ready`, in ms. */
  readyMs: number | null;
  exitCode: number | null;
}

/**
 * Boots one VM, console on QEMU's stdio, and waits for QEMU to exit (the guest powers off).
 * `pci` gives microvm a PCIe bus (and drops `pci=off`) with the root disk on it; `devices` are
 * more QEMU arguments.
 */
function boot(opts: { append: string; disk?: "ro" | "rw" | "none"; stdin?: string; ready: RegExp; pci?: boolean; devices?: string[] }): Promise<BootResult> {
  const disk = opts.disk ?? "ro";
  const argv = [
    ...["-M", `microvm,pit=off,pic=off,isa-serial=off,rtc=on${opts.pci ? ",pcie=on" : ""}`, "-accel", "tcg", "-cpu", "max", "-m", "256", "-smp", "1"],
    ...["-nodefaults", "-no-user-config", "-nographic", "-no-reboot"],
    ...["-kernel", kernel!.vmlinux, "-initrd", initramfs, "-append", kernelArgs(opts.append, opts.pci)],
    ...["-device", "virtio-serial-device,max_ports=2", "-chardev", "stdio,id=con,signal=off", "-device", "virtconsole,chardev=con"],
    ...(disk === "none"
      ? []
      : // rw goes to a throw-away overlay (snapshot=on): a guest that powers off without unmounting
        // leaves a journal to replay, and the next read-only boot of the same image would fail.
        ["-drive", `id=root,file=${rootfs},format=raw,if=none,${disk === "ro" ? "readonly=on" : "snapshot=on"}`, "-device", `${opts.pci ? "virtio-blk-pci" : "virtio-blk-device"},drive=root`]),
    ...(opts.devices ?? []),
  ];
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn("qemu-system-x86_64", argv, { stdio: ["pipe", "pipe", "pipe"] });
    children.add(child);
    let output = "";
    let readyMs: number | null = null;
    const onData = (b: Buffer) => {
      output += b.toString("utf8");
      if (readyMs === null && opts.ready.test(output)) readyMs = performance.now() - t0;
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.stdin.end(opts.stdin ?? "");
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`VM did not power off within ${BOOT_TIMEOUT_MS} ms; console:\n${output}`));
    }, BOOT_TIMEOUT_MS);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ output, readyMs, exitCode: code });
    });
  });
}

function assertCleanPowerOff(r: BootResult): void {
  assert.equal(r.exitCode, 0, r.output);
  assert.doesNotMatch(r.output, /Kernel panic/, r.output);
}

/** The modules the test init listed on its line `tag`. */
function loadedModules(output: string, tag: string): string[] {
  const m = new RegExp(`${tag} .*modules=(\\S*)`).exec(output);
  assert.ok(m, `no ${tag} line in:\n${output}`);
  return m[1]!.split(",").filter(Boolean);
}

/** Drivers of devices the VMs in these tests do not have, unless a test adds them. */
const ABSENT = ["virtio_pci", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_net", "net_failover", "failover", "vsock", "vmw_vsock_virtio_transport_common", "vmw_vsock_virtio_transport", "vsock_loopback", "virtio_rng"];

test("hf-init mounts the root disk read-only, brings lo up, hands over /proc and /sys and execs /sbin/hf-agent as PID 1", { skip }, async (t: TestContext) => {
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await boot({ append: "", ready: /HF_TEST_INIT/ });
    assertCleanPowerOff(r);
    assert.match(r.output, /HF_TEST_INIT pid=1 hostname=hyperfleet vda=blk proc=mounted sys=mounted root=ro lo=up modules=/);
    // Only the drivers of this VM's devices: virtio-mmio transport, block, console.
    assert.deepEqual(loadedModules(r.output, "HF_TEST_INIT"), ["virtio", "virtio_blk", "virtio_console", "virtio_mmio", "virtio_ring"]);
    times.push(r.readyMs!);
  }
  times.sort((a, b) => a - b);
  t.diagnostic(`spawn -> init running (TCG, 3 boots): min ${times[0]!.toFixed(0)} ms, median ${times[1]!.toFixed(0)} ms, max ${times[2]!.toFixed(0)} ms`);
});

test("each device present gets its driver and dependencies; late ones load after the switch, then expedited RCU ends", { skip }, async () => {
  const r = await boot({
    append: "hftest.late rcupdate.rcu_expedited=1",
    ready: /HF_TEST_LATE/,
    devices: ["-object", "rng-random,id=rng0,filename=/dev/urandom", "-device", "virtio-rng-device,rng=rng0", "-device", "virtio-net-device"],
  });
  assertCleanPowerOff(r);
  const early = loadedModules(r.output, "HF_TEST_INIT");
  for (const m of ["virtio_net", "net_failover", "failover", "virtio_blk", "virtio_console"]) assert.ok(early.includes(m), `${m} in ${early.join(" ")}`);
  for (const m of ABSENT.filter((m) => !["virtio_net", "net_failover", "failover", "virtio_rng"].includes(m))) assert.ok(!early.includes(m), `${m} not in ${early.join(" ")}`);
  assert.ok(loadedModules(r.output, "HF_TEST_LATE").includes("virtio_rng"), r.output);
  assert.match(r.output, /HF_TEST_LATE rcu_expedited=0 /);
});

test("hf.vsock_loopback=1 (a `cmdline:` line) loads vsock_loopback and the vsock core without a vsock device; a word that only contains it does not", { skip }, async () => {
  const near = await boot({ append: "hf.vsock_loopback=10 xhf.vsock_loopback=1 hf.vsock_loopback", ready: /HF_TEST_INIT/ });
  assertCleanPowerOff(near);
  assert.deepEqual(loadedModules(near.output, "HF_TEST_INIT"), ["virtio", "virtio_blk", "virtio_console", "virtio_mmio", "virtio_ring"]);
  const on = await boot({ append: "hf.vsock_loopback=1", ready: /HF_TEST_INIT/ });
  assertCleanPowerOff(on);
  assert.deepEqual(loadedModules(on.output, "HF_TEST_INIT"), [
    "virtio", "virtio_blk", "virtio_console", "virtio_mmio", "virtio_ring", "vmw_vsock_virtio_transport_common", "vsock", "vsock_loopback",
  ]);
});

test("with a PCI bus, virtio_pci loads and a virtio-blk-pci root disk is found", { skip }, async () => {
  const r = await boot({ append: "", pci: true, ready: /HF_TEST_INIT/ });
  assertCleanPowerOff(r);
  assert.match(r.output, /HF_TEST_INIT pid=1 hostname=hyperfleet vda=blk /);
  const mods = loadedModules(r.output, "HF_TEST_INIT");
  for (const m of ["virtio_pci", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_blk", "virtio_console"]) assert.ok(mods.includes(m), `${m} in ${mods.join(" ")}`);
  assert.ok(!mods.includes("virtio_net"), mods.join(" "));
});

test("rw and hf.init=: busybox sh from the base root disk runs as PID 1 on the console", { skip }, async () => {
  const r = await boot({
    append: "rw hf.init=/bin/sh",
    disk: "rw",
    stdin: "echo SHELL_OK $(cat /etc/hostname) pid=$$; touch /rw-probe && echo RW_OK; poweroff -f\n",
    ready: /SHELL_OK/,
  });
  assertCleanPowerOff(r);
  assert.match(r.output, /SHELL_OK hyperfleet pid=1/);
  assert.match(r.output, /RW_OK/);
});

test("a missing init is reported on the console and powers the VM off", { skip }, async () => {
  const r = await boot({ append: "hf.init=/sbin/nope", ready: /hf-init:/ });
  assertCleanPowerOff(r);
  assert.match(r.output, /hf-init: exec \/sbin\/nope on root \/dev\/vda: No such file or directory/);
});

test("a missing root disk is waited for (bounded), reported, and powers the VM off", { skip }, async () => {
  const r = await boot({ append: "", disk: "none", ready: /hf-init:/ });
  assertCleanPowerOff(r);
  assert.match(r.output, /hf-init: root device \/dev\/vda did not appear within 5000 ms/);
});
