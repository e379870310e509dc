/**
 * The QEMU driver's spawn step without a VM: a missing binary must surface as the start's coded
 * error, not as an unhandled rejection that ends the daemon.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HyperfleetError } from "../../src/core/errors.js";
import { QemuDriver } from "../../src/vmm/qemu/driver.js";
import type { VmSpec } from "../../src/core/ports/vmm-driver.js";

describe("QEMU driver spawn", () => {
  test("a missing qemu binary is HOST_TOOL_MISSING, with no unhandled rejection and nothing left in the run dir", async () => {
    const dir = await mkdtemp(join(tmpdir(), "hf-qemu-spawn-"));
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on("unhandledRejection", onUnhandled);
    try {
      const runDir = join(dir, "run");
      const spec: VmSpec = { id: "vm-missing-bin", runDir, memMib: 64, vcpus: 1, kernelPath: join(dir, "vmlinuz"), kernelArgs: "", rootDisk: { path: join(dir, "root.qcow2"), format: "qcow2" } };
      const err = await new QemuDriver({ accel: "tcg", qemuBinary: join(dir, "no-qemu") }).start(spec).then(
        async (h) => {
          await h.kill();
          return new Error("started");
        },
        (e: unknown) => e,
      );
      // The unhandled-rejection event fires after the microtask queue drains.
      await new Promise((r) => setTimeout(r, 50));
      assert.ok(err instanceof HyperfleetError && err.code === "HOST_TOOL_MISSING", `HOST_TOOL_MISSING, got ${String(err)}`);
      assert.deepEqual(unhandled, []);
      assert.deepEqual((await readdir(runDir)).filter((f) => f !== "qemu.log"), []);
    } finally {
      process.off("unhandledRejection", onUnhandled);
      await rm(dir, { recursive: true, force: true });
    }
  });
});
