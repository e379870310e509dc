/** runDirOfArgv: how a QEMU found in /proc is tied to a run dir (exact paths, never substrings). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { buildQemuArgv } from "../../src/vmm/qemu/argv.js";
import { qemuPaths } from "../../src/vmm/qemu/driver.js";
import { vmmEnv } from "../../src/vmm/process.js";
import { runDirOfArgv } from "../../src/vmm/qemu/scan.js";
import type { VmSpec } from "../../src/core/ports/vmm-driver.js";

const spec: VmSpec = {
  id: "vm_TEST",
  vcpus: 1,
  memMib: 128,
  kernelPath: "/data/kernel/vmlinux",
  kernelArgs: "console=hvc0",
  rootDisk: { path: "/data/machines/vm_TEST/rootfs.qcow2", format: "qcow2" },
  runDir: "/data/machines/vm_TEST",
};

test("the run dir of a QEMU we built the command line for", () => {
  const argv = ["qemu-system-x86_64", ...buildQemuArgv({ spec, accel: "tcg", paths: qemuPaths(spec.runDir) })];
  assert.equal(runDirOfArgv(argv), "/data/machines/vm_TEST");
  assert.equal(runDirOfArgv(["/usr/bin/qemu-system-x86_64", ...argv.slice(1)]), "/data/machines/vm_TEST");
});

test("anything else is not ours", () => {
  assert.equal(runDirOfArgv(["sleep", "-pidfile", "/data/machines/vm_TEST/qemu.pid"]), null, "not QEMU");
  assert.equal(runDirOfArgv(["qemu-system-x86_64", "-name", "hf-vm_TEST"]), null, "no pidfile");
  assert.equal(runDirOfArgv(["qemu-system-x86_64", "-pidfile", "vm_TEST/qemu.pid"]), null, "relative pidfile");
  assert.equal(runDirOfArgv(["qemu-system-x86_64", "-pidfile", "/data/machines/vm_TEST/other.pid"]), null, "another pidfile name");
  assert.equal(runDirOfArgv(["qemu-system-x86_64", "-pidfile"]), null, "truncated");
  assert.equal(runDirOfArgv([]), null);
});

test("QEMU's environment is a fixed minimal set", () => {
  assert.deepEqual(Object.keys(vmmEnv()).sort(), ["LANG", "PATH"]);
});
