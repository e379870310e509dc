/**
 * Boots the real hf-agent as PID 1 of a QEMU microvm (TCG) and exposes its virtio-serial port
 * `hf.agent` as a UNIX socket, the production transport. The initramfs is made here: busybox, the
 * four virtio modules and a two-line /init that loads them and execs the agent. The kernel and its
 * modules are the ones `npm run setup` unpacked into the data dir (assets.json), else the host's
 * /boot/vmlinuz-*; qemu and a static busybox come from the host. When something is missing,
 * vmPrerequisites() says what, and the test skips itself with that reason.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { gzipSync } from "node:zlib";
import { Conn, sleep, STATIC_AGENT_BIN, tempDir } from "./harness.js";

const QEMU = "/usr/bin/qemu-system-x86_64";
const BUSYBOX = "/usr/bin/busybox";
const MODULES = ["virtio/virtio_ring.ko", "virtio/virtio.ko", "virtio/virtio_mmio.ko", "char/virtio_console.ko"];
const APPLETS = ["sh", "cat", "echo", "sleep", "ls", "id", "uname", "insmod", "true", "hostname", "grep", "wc", "head", "tr", "ip", "kill", "sha256sum", "cut", "date"];

interface Kernel {
  image: string;
  modules: string;
}

/** The guest kernel of `npm run setup` (Debian's cloud kernel, modules unpacked beside it). */
function setupKernel(): Kernel | null {
  const manifest = join(process.env.HYPERFLEET_DATA_DIR ?? "/var/lib/hyperfleet", "assets.json");
  if (!existsSync(manifest)) return null;
  const m = JSON.parse(readFileSync(manifest, "utf8")) as { bzImage?: string; kernelVersion?: string };
  if (!m.bzImage || !m.kernelVersion) return null;
  const modules = join(dirname(dirname(m.bzImage)), "lib/modules", m.kernelVersion, "kernel/drivers");
  return existsSync(m.bzImage) && MODULES.every((x) => existsSync(join(modules, x))) ? { image: m.bzImage, modules } : null;
}

function findKernel(): Kernel | null {
  const ours = setupKernel();
  if (ours) return ours;
  if (!existsSync("/boot")) return null;
  for (const name of readdirSync("/boot").filter((n) => n.startsWith("vmlinuz-")).sort().reverse()) {
    const modules = `/lib/modules/${name.slice("vmlinuz-".length)}/kernel/drivers`;
    if (MODULES.every((m) => existsSync(join(modules, m)))) return { image: join("/boot", name), modules };
  }
  return null;
}

/** Null when a VM can be booted here, else the reason it cannot. */
export function vmPrerequisites(): string | null {
  if (!existsSync(QEMU)) return `${QEMU} is not installed`;
  if (!existsSync(BUSYBOX)) return `${BUSYBOX} is not installed`;
  if (!findKernel()) return "no guest kernel: run `npm run setup` (or have a /boot/vmlinuz-* with uncompressed virtio modules)";
  return null;
}

/** A minimal newc cpio archive writer (the initramfs format). */
class Cpio {
  private parts: Buffer[] = [];
  private ino = 1;

  dir(name: string): this {
    return this.entry(name, 0o040755, Buffer.alloc(0));
  }
  file(name: string, data: Buffer, mode = 0o644): this {
    return this.entry(name, 0o100000 | mode, data);
  }
  symlink(name: string, target: string): this {
    return this.entry(name, 0o120777, Buffer.from(target));
  }
  finish(): Buffer {
    this.entry("TRAILER!!!", 0, Buffer.alloc(0));
    return Buffer.concat(this.parts);
  }

  private entry(name: string, mode: number, data: Buffer): this {
    const fields = [this.ino++, mode, 0, 0, 1, 0, data.length, 0, 0, 0, 0, name.length + 1, 0];
    const header = "070701" + fields.map((f) => f.toString(16).padStart(8, "0")).join("");
    this.parts.push(pad(Buffer.concat([Buffer.from(header), Buffer.from(name + "\0")])), pad(data));
    return this;
  }
}

function pad(b: Buffer): Buffer {
  const rem = b.length % 4;
  return rem ? Buffer.concat([b, Buffer.alloc(4 - rem)]) : b;
}

function buildInitramfs(kernel: Kernel): Buffer {
  const cpio = new Cpio();
  for (const d of ["bin", "sbin", "lib", "lib/mods", "etc", "proc", "sys", "dev", "tmp", "run", "root"]) cpio.dir(d);
  cpio.file("bin/busybox", readFileSync(BUSYBOX), 0o755);
  for (const a of APPLETS) cpio.symlink(`bin/${a}`, "busybox");
  for (const m of MODULES) cpio.file(`lib/mods/${m.split("/")[1]}`, readFileSync(join(kernel.modules, m)));
  cpio.file("sbin/hf-agent", readFileSync(STATIC_AGENT_BIN), 0o755);
  cpio.file("etc/passwd", Buffer.from("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n"));
  cpio.file("etc/group", Buffer.from("root:x:0:\nnogroup:x:65534:\n"));
  // As src/images/rootfs-prep.ts leaves them: the agent binds copies in /run/hf over them at boot.
  cpio.file("etc/hostname", Buffer.from("hyperfleet\n"));
  cpio.file("etc/hosts", Buffer.from("127.0.0.1\tlocalhost\n127.0.1.1\thyperfleet\n"));
  const mods = MODULES.map((m) => `/lib/mods/${m.split("/")[1]}`).join(" ");
  cpio.file("init", Buffer.from(`#!/bin/sh\nfor m in ${mods}; do insmod $m; done\nexec /sbin/hf-agent\n`), 0o755);
  return gzipSync(cpio.finish(), { level: 1 });
}

function hostTscKhz(): number | null {
  const m = /^cpu MHz\s*:\s*([\d.]+)/m.exec(readFileSync("/proc/cpuinfo", "utf8"));
  return m ? Math.round(Number(m[1]) * 1000) : null;
}

export class Vm {
  readonly exited: Promise<number | null>;

  private constructor(
    readonly proc: ChildProcess,
    readonly agentSocket: string,
    readonly consoleLog: string,
  ) {
    this.exited = new Promise((res) => proc.once("exit", (code) => res(code)));
  }

  static async boot(hostname: string, opts: { vcpus?: number } = {}): Promise<Vm> {
    const kernel = findKernel()!;
    const dir = tempDir("hf-agent-vm-");
    const initrd = join(dir, "initrd.gz");
    writeFileSync(initrd, buildInitramfs(kernel));
    const agentSocket = join(dir, "agent.sock");
    const consoleLog = join(dir, "console.log");
    const tsc = hostTscKhz();
    const append = [
      "console=ttyS0", "quiet", "panic=-1", "cryptomgr.notests", "init_on_alloc=0", "mitigations=off", "nokaslr",
      "tsc=reliable", "no_timer_check", "audit=0", "pci=off", ...(tsc ? [`tsc_early_khz=${tsc}`] : []), `hf.hostname=${hostname}`,
    ].join(" ");
    const argv = [
      "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
      "-accel", "tcg", "-cpu", "max", "-M", "microvm,pit=off,pic=off,rtc=on", "-m", "256M", "-smp", String(opts.vcpus ?? 1),
      "-kernel", kernel.image, "-initrd", initrd, "-append", append,
      "-serial", `file:${consoleLog}`,
      "-device", "virtio-serial-device,max_ports=2",
      "-chardev", `socket,id=agent,path=${agentSocket},server=on,wait=off`,
      "-device", "virtserialport,chardev=agent,name=hf.agent",
    ];
    const proc = spawn(QEMU, argv, { stdio: ["ignore", "ignore", "inherit"] });
    const vm = new Vm(proc, agentSocket, consoleLog);
    for (let i = 0; i < 500 && !existsSync(agentSocket); i++) await sleep(10);
    return vm;
  }

  /** Connects to the agent's port and waits for READY (slow under TCG right after boot). */
  open(readyTimeoutMs = 60_000): Promise<Conn> {
    return Conn.open(this.agentSocket, readyTimeoutMs);
  }

  /** A new session the way a host must start one on virtio-serial (Conn.session). */
  session(opts: { attempts?: number; onRetry?: () => void } = {}): Promise<Conn> {
    return Conn.session(this.agentSocket, { replyTimeoutMs: 10_000, ...opts });
  }

  console(): string {
    return existsSync(this.consoleLog) ? readFileSync(this.consoleLog, "utf8") : "";
  }

  async kill(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    process.kill(this.proc.pid!, "SIGKILL");
    await this.exited;
  }
}
