/**
 * The guest-output bounds and cancellation end to end, through the library (src/embed/machine.ts) in
 * a real QEMU microVM: exec output capped, a size-less procfs file refused at maxBytes, aborted
 * reads and uploads cancelled in the guest, and the agent still answering afterwards.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { Machine } from "../../src/embed/machine.js";
import { isHyperfleetError } from "../../src/core/errors.js";
import { isAlive } from "../../src/vmm/process.js";
import { dataDir, tempRunDir } from "./helpers.js";

const MiB = 1024 * 1024;

describe("agent limits and cancellation (real VM)", { timeout: 120_000 }, () => {
  let m: Machine;
  let runDir: string;
  let qemuPid: number | null = null;

  before(async () => {
    runDir = await tempRunDir();
    m = new Machine({ vcpuCount: 1, memSizeMib: 256, dataDir: dataDir(), runDir });
    (await m.start()).unwrap();
    qemuPid = m.pid;
  });

  after(async () => {
    await m.destroy();
    assert.equal(existsSync(runDir), false);
    // Our own VM only: other processes on this host may run VMs of their own meanwhile.
    assert.ok(qemuPid !== null && !(await isAlive(qemuPid)), `qemu ${qemuPid} is still running`);
  });

  async function stillAnswers(): Promise<void> {
    assert.equal((await m.exec(["echo", "alive"])).unwrap().stdout, "alive\n");
  }

  test("exec output beyond maxOutputBytes is dropped and flagged", async () => {
    const r = (await m.exec(["sh", "-c", "cat /dev/zero & sleep 2; kill $!"], { maxOutputBytes: MiB })).unwrap();
    assert.equal(r.stdout.length, MiB);
    assert.equal(r.stdoutTruncated, true);
    assert.equal(r.stderrTruncated, false);
    await stillAnswers();
  });

  test("readFile of /proc/self/pagemap with maxBytes fails FILE_TOO_LARGE", async () => {
    const r = await m.readFile("/proc/self/pagemap", { maxBytes: 4 * MiB });
    assert.ok(!r.ok && isHyperfleetError(r.error, "FILE_TOO_LARGE"), r.ok ? "read succeeded" : String(r.error));
    assert.deepEqual(r.error.details, { limit: 4 * MiB });
    await stillAnswers();
  });

  test("an aborted readFile and writeFile fail OPERATION_CANCELLED and leave no temp file", async () => {
    const read = await m.readFile("/proc/self/pagemap", { signal: AbortSignal.timeout(300) });
    assert.ok(!read.ok && isHyperfleetError(read.error, "OPERATION_CANCELLED"), read.ok ? "read succeeded" : String(read.error));
    (await m.mkdir("/tmp/upload")).unwrap();
    const ac = new AbortController();
    const upload = m.writeFile("/tmp/upload/big.bin", Buffer.alloc(64 * MiB, 1), { signal: ac.signal });
    // By the next turn of the event loop the WRITE and its first DATA frame are on the wire (the
    // guest creates its temp file), and the rest waits for the socket to drain: far from done.
    setImmediate(() => ac.abort());
    const w = await upload;
    assert.ok(!w.ok && isHyperfleetError(w.error, "OPERATION_CANCELLED"), w.ok ? "upload finished" : String(w.error));
    const ls = (await m.exec(["ls", "-A", "/tmp/upload"])).unwrap();
    assert.equal(ls.stdout, "", "the cancelled upload's temp file was removed");
    await stillAnswers();
  });
});
