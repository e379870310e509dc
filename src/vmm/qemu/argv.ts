/**
 * Pure QEMU command-line builder for the `microvm` machine type. No I/O: golden-tested in
 * test/unit/qemu-argv.test.ts. Option choices are measured (docs/ARCHITECTURE.md, HOST-NOTES):
 * pit/pic/isa-serial off cut boot time; rtc stays on (rtc=off costs ~2 s of CMOS waits).
 */
import type { DiskSpec, VmSpec } from "../../core/ports/vmm-driver.js";
import { SERIAL_PORT_NAME } from "../../agent/protocol.js";

export type Accel = "kvm" | "tcg";

export interface QemuPaths {
  qmpSocket: string;
  agentSocket: string;
  consoleLog: string;
  pidFile: string;
}

export interface QemuLaunch {
  spec: VmSpec;
  accel: Accel;
  paths: QemuPaths;
  /** TCG translation cache in MiB. Small keeps idle VMs small; <= 64 slows boot measurably. */
  tbSizeMib?: number;
  /** Guest RAM backend; default memfd. */
  memory?: GuestMemory;
  /** Waits for an incoming migration (`-incoming defer`): a restore. */
  incoming?: boolean;
  /** The host's TSC rate, for a caller's own command line that does not give it (qemuKernelArgs). */
  tscKhz?: number | null;
}

export const DEFAULT_TB_SIZE_MIB = 128;

/** The id of the guest RAM backend (`-M microvm,memory-backend=<id>`). */
export const MEMORY_BACKEND_ID = "mem";

/**
 * Where guest RAM lives (docs/adr/0009). `memfd`: an anonymous shared memfd, every booted or resumed
 * VM; a clone snapshot copies it out of /proc/<pid>/fd while the guest is paused, and it dies with
 * QEMU (no file to clean up). `file`: a clone maps its snapshot's frozen RAM file private
 * (copy-on-write, loaded lazily, shared in the page cache by every clone of one snapshot).
 */
export type GuestMemory = { kind: "memfd" } | { kind: "file"; path: string };

function memoryBackend(memMib: number, m: GuestMemory): string {
  if (m.kind === "memfd") return `memory-backend-memfd,id=${MEMORY_BACKEND_ID},size=${memMib}M,share=on`;
  return `memory-backend-file,id=${MEMORY_BACKEND_ID},size=${memMib}M,mem-path=${m.path},share=off`;
}

export function buildQemuArgv(l: QemuLaunch): string[] {
  const { spec, paths } = l;
  const machine = ["microvm", "pit=off", "pic=off", "isa-serial=off", "rtc=on", `memory-backend=${MEMORY_BACKEND_ID}`];
  const argv: string[] = [
    "-name", `hf-${spec.id},debug-threads=on`,
    "-nodefaults", "-no-user-config", "-nographic",
    // A guest reboot becomes a QEMU exit: "reboot" and "power off" both end the VM.
    "-no-reboot",
  ];
  if (l.accel === "kvm") argv.push("-accel", "kvm", "-cpu", "host");
  else argv.push("-accel", `tcg,tb-size=${l.tbSizeMib ?? DEFAULT_TB_SIZE_MIB}`, "-cpu", "max");
  argv.push("-M", machine.join(","));
  argv.push("-m", `${spec.memMib}M`, "-object", memoryBackend(spec.memMib, l.memory ?? { kind: "memfd" }), "-smp", String(spec.vcpus));
  argv.push("-kernel", spec.kernelPath);
  if (spec.initrdPath) argv.push("-initrd", spec.initrdPath);
  argv.push("-append", qemuKernelArgs(spec.kernelArgs, l.tscKhz ?? null));

  argv.push("-chardev", `socket,id=qmp,path=${paths.qmpSocket},server=on,wait=off`, "-mon", "chardev=qmp,mode=control");

  // Port 0 of a virtio-serial bus is the console; our agent needs a named port, hence max_ports=2.
  argv.push(
    "-device", "virtio-serial-device,max_ports=2",
    "-chardev", `file,id=console,path=${paths.consoleLog}`,
    "-device", "virtconsole,chardev=console",
    "-chardev", `socket,id=agent,path=${paths.agentSocket},server=on,wait=off`,
    "-device", `virtserialport,chardev=agent,name=${SERIAL_PORT_NAME}`,
  );

  const disks = [spec.rootDisk, ...(spec.extraDisks ?? [])];
  disks.forEach((d, i) => {
    const opts = [`id=disk${i}`, `file=${d.path}`, `format=${d.format ?? "raw"}`, "if=none", "discard=unmap", "cache=writeback"];
    if (d.readOnly) opts.push("readonly=on");
    argv.push("-drive", opts.join(","), "-device", `virtio-blk-device,drive=disk${i}${d.serial ? `,serial=${d.serial}` : ""}`);
  });

  (spec.nics ?? []).forEach((n, i) => {
    argv.push("-netdev", `tap,id=net${i},ifname=${n.tap},script=no,downscript=no`, "-device", `virtio-net-device,netdev=net${i},mac=${n.mac}`);
  });

  argv.push("-object", "rng-random,id=rng0,filename=/dev/urandom", "-device", "virtio-rng-device,rng=rng0");
  if (l.incoming) argv.push("-incoming", "defer");
  argv.push("-pidfile", paths.pidFile);
  return argv;
}

/**
 * A caller's own command line, completed as the VM needs it (the default one already is).
 * Firecracker appends `root=/dev/vda rw` for its root drive, so command lines written for it (the
 * SDK example's `console=ttyS0 reboot=k panic=1 pci=off`) name no root: we add the same. Our
 * machine has no PIT (`pit=off`), which the kernel would calibrate the TSC against: without
 * `tsc_early_khz` it never finishes booting under TCG, so the host's rate is added when known.
 * It has no UART either (`isa-serial=off`), only the virtio console: when the last `console=` is
 * not an hvc (or none is given), `console=hvc0` goes last, which makes it /dev/console, so the
 * guest's output still reaches console.log and hf-init finds its console. (The kernel's messages
 * from before virtio_console loads went to the named console only: console.log starts later.)
 */
export function qemuKernelArgs(args: string, tscKhz: number | null = null): string {
  const words = args.split(/\s+/).filter((w) => w !== "");
  const extra: string[] = [];
  if (!words.some((w) => w.startsWith("root="))) extra.push("root=/dev/vda", "rw");
  if (tscKhz !== null && !words.some((w) => w.startsWith("tsc_early_khz="))) extra.push(`tsc_early_khz=${Math.round(tscKhz)}`);
  const lastConsole = words.filter((w) => w.startsWith("console=")).at(-1);
  if (lastConsole === undefined || !lastConsole.startsWith("console=hvc")) extra.push("console=hvc0");
  return extra.length === 0 ? args : [...words, ...extra].join(" ");
}

/** The control and agent socket paths a command line of ours names (from meta.json or /proc). Pure. */
export function socketsOfArgv(argv: readonly string[]): Partial<Pick<QemuPaths, "qmpSocket" | "agentSocket">> {
  const out: Partial<Pick<QemuPaths, "qmpSocket" | "agentSocket">> = {};
  for (let i = 0; i < argv.length - 1; i++) {
    if (argv[i] !== "-chardev") continue;
    const opts = argv[i + 1]!.split(",");
    const id = opts.find((o) => o.startsWith("id="))?.slice(3);
    const path = opts.find((o) => o.startsWith("path="))?.slice(5);
    if (path === undefined) continue;
    if (id === "qmp") out.qmpSocket = path;
    else if (id === "agent") out.agentSocket = path;
  }
  return out;
}

/**
 * The program and arguments that start QEMU: directly, or through `nsenter --net` when the VM's
 * TAP lives in its own network namespace (docs/adr/0008). nsenter execs QEMU, so the process keeps
 * the pid we spawned and its command line is QEMU's (adoption and the /proc scan see no difference).
 */
export function qemuLaunchCommand(bin: string, argv: readonly string[], netns: string | undefined): { file: string; args: string[] } {
  if (netns === undefined) return { file: bin, args: [...argv] };
  return { file: "nsenter", args: [`--net=${netns}`, "--", bin, ...argv] };
}

/** What a QEMU command line of ours says about the VM's root disk and RAM (for snapshots). Pure. */
export interface QemuArgvFacts {
  rootDisk: DiskSpec | null;
  memory: GuestMemory | null;
}

/** Reads back buildQemuArgv's output (from meta.json or /proc/<pid>/cmdline). */
export function readQemuArgv(argv: readonly string[]): QemuArgvFacts {
  const optsOf = (flag: string, first: (o: Map<string, string>) => boolean): Map<string, string> | null => {
    for (let i = 0; i < argv.length - 1; i++) {
      if (argv[i] !== flag) continue;
      const o = new Map<string, string>();
      for (const kv of argv[i + 1]!.split(",")) {
        const eq = kv.indexOf("=");
        // A bare word is a flag or the object's type (`memory-backend-memfd,id=...`).
        if (eq < 0) o.set(kv, "on");
        else o.set(kv.slice(0, eq), kv.slice(eq + 1));
      }
      if (first(o)) return o;
    }
    return null;
  };
  const drive = optsOf("-drive", (o) => o.get("id") === "disk0");
  const mem = optsOf("-object", (o) => o.get("id") === MEMORY_BACKEND_ID);
  const format = drive?.get("format");
  const rootDisk: DiskSpec | null = drive?.get("file")
    ? { path: drive.get("file")!, ...(format === "raw" || format === "qcow2" ? { format } : {}), ...(drive.get("readonly") === "on" ? { readOnly: true } : {}) }
    : null;
  let memory: GuestMemory | null = null;
  if (mem?.has("memory-backend-memfd")) memory = { kind: "memfd" };
  else if (mem?.has("memory-backend-file") && mem.get("mem-path")) memory = { kind: "file", path: mem.get("mem-path")! };
  return { rootDisk, memory };
}
