import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { buildQemuArgv, qemuLaunchCommand } from "../../src/vmm/qemu/argv.js";
import { buildKernelArgs } from "../../src/vmm/kernel-args.js";
import { qemuPaths } from "../../src/vmm/qemu/driver.js";
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
