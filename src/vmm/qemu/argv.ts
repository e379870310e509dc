/**
 * Pure QEMU command-line builder for the `microvm` machine type. No I/O: golden-tested in
 * test/unit/qemu-argv.test.ts. Option choices are measured (docs/ARCHITECTURE.md, HOST-NOTES):
 * pit/pic/isa-serial off cut boot time; rtc stays on (rtc=off costs ~2 s of CMOS waits).
 */
import type { VmSpec } from "../../core/ports/vmm-driver.js";
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
}

export const DEFAULT_TB_SIZE_MIB = 128;

export function buildQemuArgv(l: QemuLaunch): string[] {
  const { spec, paths } = l;
  const machine = ["microvm", "pit=off", "pic=off", "isa-serial=off", "rtc=on"];
  const argv: string[] = [
    "-name", `hf-${spec.id},debug-threads=on`,
    "-nodefaults", "-no-user-config", "-nographic",
    // A guest reboot becomes a QEMU exit: "reboot" and "power off" both end the VM.
    "-no-reboot",
  ];
  if (l.accel === "kvm") argv.push("-accel", "kvm", "-cpu", "host");
  else argv.push("-accel", `tcg,tb-size=${l.tbSizeMib ?? DEFAULT_TB_SIZE_MIB}`, "-cpu", "max");
  argv.push("-M", machine.join(","));
  argv.push("-m", `${spec.memMib}M`, "-smp", String(spec.vcpus));
  argv.push("-kernel", spec.kernelPath);
  if (spec.initrdPath) argv.push("-initrd", spec.initrdPath);
  argv.push("-append", spec.kernelArgs);

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
    argv.push("-drive", opts.join(","), "-device", `virtio-blk-device,drive=disk${i}`);
  });

  (spec.nics ?? []).forEach((n, i) => {
    argv.push("-netdev", `tap,id=net${i},ifname=${n.tap},script=no,downscript=no`, "-device", `virtio-net-device,netdev=net${i},mac=${n.mac}`);
  });

  argv.push("-object", "rng-random,id=rng0,filename=/dev/urandom", "-device", "virtio-rng-device,rng=rng0");
  argv.push("-pidfile", paths.pidFile);
  return argv;
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
