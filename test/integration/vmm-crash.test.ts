/**
 * The VMM process seen from the library: QEMU's own start error reaches the caller, QEMU does not
 * inherit the host process's environment, and an adopted VM's death is noticed through its QMP
 * socket closing (Node has no pidfd; polling /proc would be 250 ms late).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Machine } from "../../src/embed/machine.js";
import { isAlive } from "../../src/vmm/process.js";
import { findVmmsIn } from "../../src/vmm/qemu/scan.js";
import { dataDir, tempRunDir } from "./helpers.js";

/** QEMUs of this test's run dir only: other tests on this host run VMs in their own hf-test-* dirs. */
async function leftoverQemu(runDir: string): Promise<number[]> {
  return (await findVmmsIn(runDir)).map((v) => v.pid);
}

const root = fileURLToPath(new URL("../..", import.meta.url));

test("a QEMU that exits during start puts the end of its own log into the error", async () => {
  const runDir = await tempRunDir();
  try {
    // A "kernel" QEMU cannot load: QEMU itself refuses and exits. (Guest RAM is a memfd, which the
    // kernel's overcommit heuristic does not refuse, so an oversized VM is no longer such a case:
    // admission control is what keeps one from starting, ADR 0006/0009.)
    const kernel = join(runDir, "not-a-kernel");
    await writeFile(kernel, "this is not a kernel\n".repeat(64));
    const m = new Machine({ vcpuCount: 1, memSizeMib: 256, dataDir: dataDir(), runDir, kernelImagePath: kernel });
    const r = await m.start();
    assert.equal(r.ok, false, "the start must fail");
    const err = r.ok ? null : r.error;
    assert.match(err!.message, /kernel/i, err!.message);
    assert.match(err!.message, /log .* ends with/, err!.message);
    assert.ok(err!.message.length < 4096, "the log excerpt is bounded");
    assert.equal(m.pid, null);
    assert.deepEqual(await leftoverQemu(runDir), []);
  } finally {
    await rm(runDir, { recursive: true, force: true });
  }
});

test("QEMU gets a minimal environment, not the host process's", async () => {
  const runDir = await tempRunDir();
  process.env.HYPERFLEET_TEST_SECRET = "must-not-leak";
  let left: number[] | undefined;
  const m = new Machine({ vcpuCount: 1, memSizeMib: 128, dataDir: dataDir(), runDir });
  try {
    (await m.start()).unwrap();
    const environ = (await readFile(`/proc/${m.pid}/environ`, "utf8")).split("\0").filter(Boolean);
    assert.ok(environ.some((v) => v.startsWith("PATH=")), `PATH is passed: ${environ.join(" ")}`);
    assert.deepEqual(environ.filter((v) => v.startsWith("HYPERFLEET_")), []);
    assert.ok(environ.length <= 4, `only a few variables: ${environ.join(" ")}`);
  } finally {
    delete process.env.HYPERFLEET_TEST_SECRET;
    await m.destroy();
    left = await leftoverQemu(runDir);
    await rm(runDir, { recursive: true, force: true });
  }
  assert.deepEqual(left, []);
});

test("a VM is adopted even without its records, and its death is detected through its QMP socket closing", async () => {
  const runDir = await tempRunDir();
  const script = `${root}/.vmm-crash-parent-${process.pid}.mts`;
  await writeFile(script, `
    import { Machine } from "./src/embed/machine.ts";
    const m = new Machine({ vcpuCount: 1, memSizeMib: 128, dataDir: ${JSON.stringify(dataDir())}, runDir: ${JSON.stringify(runDir)} });
    (await m.start()).unwrap();
    console.log(JSON.stringify({ id: m.id, pid: m.pid }));
    process.exit(0);
  `);
  let adopted: Machine | null = null;
  let left: number[] | undefined;
  let vmPid = 0;
  try {
    const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", script], { cwd: root, timeout: 120_000 });
    const { id, pid } = JSON.parse(stdout.trim().split("\n").pop()!) as { id: string; pid: number };
    vmPid = pid;
    // Without the records (a crash between spawn and record, or files lost), the QEMU whose command
    // line points into the run dir is still found and adopted.
    await rm(join(runDir, "meta.json"));
    await rm(join(runDir, "qemu.pid"));
    adopted = await Machine.adopt({ id, runDir, vcpuCount: 1, memSizeMib: 128, dataDir: dataDir() });
    assert.ok(adopted, "adopted from the /proc scan");
    assert.equal(adopted.pid, pid);
    const t0 = performance.now();
    process.kill(pid, "SIGKILL");
    const st = await adopted.exited();
    const ms = performance.now() - t0;
    assert.equal(st.state, "exited");
    assert.equal(st.detectedBy, "qmp-close", "noticed from the QMP socket, not the /proc poll");
    assert.equal(await isAlive(pid), false);
    // Generous: the poll path alone would also pass this; detectedBy is what tells them apart.
    assert.ok(ms < 2_000, `detected after ${ms.toFixed(0)} ms`);
    console.log(`adopted VM exit detected after ${ms.toFixed(1)} ms`);
  } finally {
    await adopted?.destroy();
    if (vmPid && (await isAlive(vmPid))) process.kill(vmPid, "SIGKILL");
    await rm(script, { force: true });
    left = await leftoverQemu(runDir);
    await rm(runDir, { recursive: true, force: true });
  }
  assert.deepEqual(left, []);
});
