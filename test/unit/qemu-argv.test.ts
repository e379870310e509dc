import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { buildQemuArgv, qemuKernelArgs, qemuLaunchCommand, readQemuArgv, socketsOfArgv } from "../../src/vmm/qemu/argv.js";
import { buildKernelArgs } from "../../src/vmm/kernel-args.js";
import { qemuPaths, specPaths } from "../../src/vmm/qemu/driver.js";
import type { VmSpec } from "../../src/core/ports/vmm-driver.js";

const golden = (name: string) => fileURLToPath(new URL(`./golden/${name}`, import.meta.url));

const spec: VmSpec = {
  id: "vm_TEST",
  vcpus: 2,
  memMib: 256,
  kernelPath: "/data/kernel/vmlinux",
  initrdPath: "/data/initramfs.cpio",
  kernelArgs: buildKernelArgs({ hostname: "vm_TEST", tscKhz: 2596132 }),
  rootDisk: { path: "/run/vm_TEST/rootfs.qcow2", format: "qcow2" },
  nics: [{ tap: "hf-tap0", mac: "02:00:00:00:00:01" }],
  runDir: "/run/vm_TEST",
};

/** Compares with the stored golden file; UPDATE_GOLDEN=1 rewrites it after a deliberate change. */
function assertGolden(name: string, actual: string) {
  if (process.env.UPDATE_GOLDEN) writeFileSync(golden(name), actual);
  assert.equal(actual, readFileSync(golden(name), "utf8"));
}

test("TCG argv matches the golden file", () => {
  assertGolden("qemu-tcg.argv", buildQemuArgv({ spec, accel: "tcg", paths: qemuPaths(spec.runDir) }).join("\n") + "\n");
});

test("KVM argv matches the golden file", () => {
  assertGolden("qemu-kvm.argv", buildQemuArgv({ spec: { ...spec, nics: [] }, accel: "kvm", paths: qemuPaths(spec.runDir) }).join("\n") + "\n");
});

test("volume disks: after the root disk, in order, each with its virtio serial (how the guest finds it), matching the golden file", () => {
  const volumes: VmSpec = { ...spec, nics: [], extraDisks: [{ path: "/data/volumes/vol_A.ext4", format: "raw", serial: "hfvol0" }, { path: "/data/volumes/vol_B.ext4", format: "raw", serial: "hfvol1" }] };
  assertGolden("qemu-volumes.argv", buildQemuArgv({ spec: volumes, accel: "tcg", paths: qemuPaths(spec.runDir) }).join("\n") + "\n");
});

test("read-only disks", () => {
  const argv = buildQemuArgv({ spec: { ...spec, rootDisk: { path: "/b.ext4", readOnly: true } }, accel: "tcg", paths: qemuPaths("/r") });
  assert.ok(argv.includes("id=disk0,file=/b.ext4,format=raw,if=none,discard=unmap,cache=writeback,readonly=on"));
});

test("kernel args carry the fast-boot set, TSC rate and hostname", () => {
  const a = buildKernelArgs({ hostname: "h1", tscKhz: 1000.4 });
  for (const want of ["console=hvc0", "root=/dev/vda", "cryptomgr.notests", "panic=-1", "tsc_early_khz=1000", "hf.hostname=h1"]) assert.ok(a.split(" ").includes(want), want);
  assert.ok(!buildKernelArgs().includes("tsc_early_khz"));
});

test("a VM with a network namespace starts QEMU through nsenter, which execs it with the same argv", () => {
  const argv = ["-machine", "microvm", "-pidfile", "/run/x/qemu.pid"];
  assert.deepEqual(qemuLaunchCommand("qemu-system-x86_64", argv, undefined), { file: "qemu-system-x86_64", args: argv });
  assert.deepEqual(qemuLaunchCommand("qemu-system-x86_64", argv, "/run/netns/hf-ab12cd-vm_1"), {
    file: "nsenter",
    args: ["--net=/run/netns/hf-ab12cd-vm_1", "--", "qemu-system-x86_64", ...argv],
  });
});

test("every VM keeps its RAM in a shared memfd named on the machine (snapshots copy it out)", () => {
  const argv = buildQemuArgv({ spec, accel: "tcg", paths: qemuPaths(spec.runDir) });
  assert.ok(argv.includes("memory-backend-memfd,id=mem,size=256M,share=on"));
  assert.ok(argv[argv.indexOf("-M") + 1]!.split(",").includes("memory-backend=mem"));
  assert.equal(argv[argv.indexOf("-m") + 1], "256M", "-m stays: it must agree with the backend's size");
  assert.ok(!argv.includes("-incoming"), "a boot waits for no migration");
});

test("restore argv of a clone matches the golden file: the frozen RAM file mapped private, -incoming defer", () => {
  const argv = buildQemuArgv({ spec, accel: "tcg", paths: qemuPaths(spec.runDir), memory: { kind: "file", path: "/snap/s1/memory" }, incoming: true });
  assertGolden("qemu-restore-clone.argv", argv.join("\n") + "\n");
});

test("restore argv of a suspend: the boot argv with a fresh memfd and -incoming defer, devices in the same order", () => {
  const boot = buildQemuArgv({ spec, accel: "tcg", paths: qemuPaths(spec.runDir) });
  const restore = buildQemuArgv({ spec, accel: "tcg", paths: qemuPaths(spec.runDir), incoming: true });
  const i = restore.indexOf("-incoming");
  assert.deepEqual(restore.slice(i, i + 2), ["-incoming", "defer"]);
  assert.deepEqual([...restore.slice(0, i), ...restore.slice(i + 2)], boot);
});

test("readQemuArgv reads back the root disk and the RAM backend the builder wrote", () => {
  assert.deepEqual(readQemuArgv(buildQemuArgv({ spec, accel: "tcg", paths: qemuPaths(spec.runDir) })), {
    rootDisk: { path: "/run/vm_TEST/rootfs.qcow2", format: "qcow2" },
    memory: { kind: "memfd" },
  });
  const ro = { ...spec, rootDisk: { path: "/b.ext4", readOnly: true } };
  assert.deepEqual(readQemuArgv(buildQemuArgv({ spec: ro, accel: "kvm", paths: qemuPaths("/r"), memory: { kind: "file", path: "/s/memory" }, incoming: true })), {
    rootDisk: { path: "/b.ext4", format: "raw", readOnly: true },
    memory: { kind: "file", path: "/s/memory" },
  });
  assert.deepEqual(readQemuArgv(["qemu-system-x86_64", "-m", "256M"]), { rootDisk: null, memory: null }, "an older command line without a memory backend");
});

test("a command line written for Firecracker is completed for our QEMU machine: root, TSC rate, virtio console", () => {
  const fc = "console=ttyS0 reboot=k panic=1 pci=off";
  assert.equal(qemuKernelArgs(fc, 2596120.4), `${fc} root=/dev/vda rw tsc_early_khz=2596120 console=hvc0`);
  assert.equal(qemuKernelArgs(fc), `${fc} root=/dev/vda rw console=hvc0`, "no TSC rate known: none added");
  assert.equal(qemuKernelArgs("root=/dev/vdb ro console=hvc0 tsc_early_khz=1000", 2000), "root=/dev/vdb ro console=hvc0 tsc_early_khz=1000", "what the caller gave is kept");
  assert.equal(qemuKernelArgs("quiet"), "quiet root=/dev/vda rw console=hvc0", "no console at all: ours");
  assert.equal(qemuKernelArgs("console=hvc0 console=ttyS0 root=/dev/vda"), "console=hvc0 console=ttyS0 root=/dev/vda console=hvc0", "the last console decides");
  const ours = buildKernelArgs({ hostname: "vm_TEST", tscKhz: 2596132 });
  assert.equal(qemuKernelArgs(ours, 1), ours, "our own command line is left as it is");
});

test("sockets a caller names replace ours on the command line and are read back from it", () => {
  const named = { ...spec, controlSocket: "/tmp/x/firecracker.sock", agentSocket: "/tmp/x/hyperfleet.vsock" };
  const paths = specPaths(named);
  assert.equal(paths.pidFile, "/run/vm_TEST/qemu.pid", "the pidfile stays in the run dir (the /proc scan's key)");
  const argv = buildQemuArgv({ spec: named, accel: "tcg", paths });
  assert.ok(argv.includes("socket,id=qmp,path=/tmp/x/firecracker.sock,server=on,wait=off"));
  assert.ok(argv.includes("socket,id=agent,path=/tmp/x/hyperfleet.vsock,server=on,wait=off"));
  assert.deepEqual(socketsOfArgv(argv), { qmpSocket: "/tmp/x/firecracker.sock", agentSocket: "/tmp/x/hyperfleet.vsock" });
  assert.deepEqual(socketsOfArgv(buildQemuArgv({ spec, accel: "tcg", paths: qemuPaths(spec.runDir) })), { qmpSocket: "/run/vm_TEST/qmp.sock", agentSocket: "/run/vm_TEST/agent.sock" });
});
