/**
 * A VM outlives the process that started it (own session, stdio on files) and a new process can
 * adopt it: the foundation of daemon restarts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { rm, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Machine } from "../../src/embed/machine.js";
import { isAlive } from "../../src/vmm/process.js";
import { dataDir, leftoverQemu, tempRunDir } from "./helpers.js";

const root = fileURLToPath(new URL("../..", import.meta.url));

test("a VM started by a process that exits is adopted by the next one", async () => {
  const runDir = await tempRunDir();
  const script = `${root}/.adopt-parent-${process.pid}.mts`;
  // The parent starts a VM, leaves a marker in it, prints the id and pid, and exits without stopping it.
  await writeFile(script, `
    import { Machine } from "./src/embed/machine.ts";
    const m = new Machine({ vcpuCount: 1, memSizeMib: 256, dataDir: ${JSON.stringify(dataDir())}, runDir: ${JSON.stringify(runDir)} });
    (await m.start()).unwrap();
    (await m.writeFile("/tmp/marker", "from-parent")).unwrap();
    console.log(JSON.stringify({ id: m.id, pid: m.pid }));
    process.exit(0);
  `);
  let adopted: Machine | null = null;
  let vmPid = 0;
  try {
    const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", script], { cwd: root, timeout: 120_000 });
    const { id, pid } = JSON.parse(stdout.trim().split("\n").pop()!) as { id: string; pid: number };
    vmPid = pid;
    assert.ok(await isAlive(pid), "the VM outlived its parent");
    adopted = await Machine.adopt({ id, runDir, vcpuCount: 1, memSizeMib: 256, dataDir: dataDir() });
    assert.ok(adopted, "adopted");
    assert.equal(adopted.pid, pid);
    assert.equal((await adopted.readFile("/tmp/marker")).unwrap().toString(), "from-parent");
    assert.equal((await adopted.exec(["echo", "still here"])).unwrap().stdout, "still here\n");
    assert.equal(await Machine.adopt({ id: "vm_other", runDir, vcpuCount: 1, memSizeMib: 256, dataDir: dataDir() }), null, "a wrong id is not adopted");
  } finally {
    await adopted?.destroy();
    // Adoption failed: end the parent's VM by the pid it reported, so no qemu outlives the test.
    if (!adopted && vmPid && (await isAlive(vmPid))) process.kill(vmPid, "SIGKILL");
    await rm(script, { force: true });
    await rm(runDir, { recursive: true, force: true });
  }
  assert.deepEqual(await leftoverQemu(), []);
});
