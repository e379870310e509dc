/**
 * End to end through the library entry point: a real QEMU microVM (TCG here, KVM where the probe
 * proves it works) with our initramfs and agent, driven over the virtio-serial agent channel.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { Machine } from "../../src/embed/machine.js";
import { isHyperfleetError } from "../../src/core/errors.js";
import { isAlive } from "../../src/vmm/process.js";
import { dataDir, tempRunDir, leftoverQemu } from "./helpers.js";

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

describe("Machine (real VM)", () => {
  let m: Machine;
  let runDir: string;

  before(async () => {
    runDir = await tempRunDir();
    m = new Machine({ vcpuCount: 1, memSizeMib: 256, dataDir: dataDir(), runDir });
    (await m.start()).unwrap();
  });

  after(async () => {
    await m.destroy();
    assert.equal(existsSync(runDir), false);
  });

  test("uname -a comes from the guest kernel", async () => {
    const r = (await m.exec(["uname", "-a"])).unwrap();
    assert.equal(r.exitCode, 0);
    assert.match(r.stdout, /^Linux \S+ 6\.\d+\.\d+-\d+-cloud-amd64 /);
    console.log(`guest: ${r.stdout.trim()}`);
  });

  test("stdin is piped to cat", async () => {
    const input = "hello from the host\n".repeat(1000);
    const r = (await m.exec(["cat"], { stdin: input })).unwrap();
    assert.equal(r.stdout, input);
  });

  test("exit code 3 from sh -c 'exit 3'", async () => {
    const r = (await m.exec(["sh", "-c", "exit 3"])).unwrap();
    assert.equal(r.exitCode, 3);
    assert.equal(r.signal, null);
  });

  test("stderr is kept apart from stdout", async () => {
    const r = (await m.exec(["sh", "-c", "echo out; echo err >&2; echo out2"])).unwrap();
    assert.equal(r.stdout, "out\nout2\n");
    assert.equal(r.stderr, "err\n");
  });

  test("a timeout kills the guest process and says so", async () => {
    const started = Date.now();
    const res = await m.exec(["sh", "-c", "echo started; sleep 30"], { timeoutMs: 700 });
    assert.equal(res.ok, false);
    assert.ok(!res.ok && isHyperfleetError(res.error, "EXEC_TIMEOUT"), "EXEC_TIMEOUT");
    assert.match(res.error.message, /did not finish within 700 ms and was killed/);
    assert.equal((res.error.details as { stdout: string }).stdout, "started\n");
    assert.ok(Date.now() - started < 5_000);
    const ps = (await m.exec(["sh", "-c", "ps -o comm | grep -c '^sleep' || true"])).unwrap();
    assert.equal(ps.stdout.trim(), "0", "the timed-out sleep is gone");
  });

  test("env, cwd and a missing command", async () => {
    const r = (await m.exec(["sh", "-c", 'echo "$GREETING $(pwd)"'], { env: { GREETING: "hi" }, cwd: "/tmp" })).unwrap();
    assert.equal(r.stdout, "hi /tmp\n");
    const missing = await m.exec(["/no/such/program"]);
    assert.ok(!missing.ok && isHyperfleetError(missing.error, "EXEC_NOT_FOUND"));
  });

  test("10 concurrent execs on one VM", async () => {
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => m.exec(["sh", "-c", `sleep 0.2; echo job-${i}`]).then((r) => r.unwrap())),
    );
    results.forEach((r, i) => assert.equal(r.stdout, `job-${i}\n`));
  });

  test("a 20 MiB upload reads back byte-identical", async () => {
    const data = randomBytes(20 * 1024 * 1024);
    const w = (await m.writeFile("/tmp/big.bin", data, { mode: 0o600 })).unwrap();
    assert.equal(w.size, data.length);
    const guestSum = (await m.exec(["sha256sum", "/tmp/big.bin"])).unwrap().stdout.split(" ")[0];
    assert.equal(guestSum, sha256(data));
    const back = (await m.readFile("/tmp/big.bin")).unwrap();
    assert.equal(sha256(back), sha256(data));
  });

  test("stat and delete", async () => {
    (await m.writeFile("/tmp/dir/a.txt", "abc", { mkdirs: true, mode: 0o640 })).unwrap();
    const st = (await m.stat("/tmp/dir/a.txt")).unwrap();
    assert.equal(st.size, 3);
    assert.equal(st.type, "file");
    assert.equal(st.mode & 0o777, 0o640);
    assert.equal((await m.stat("/tmp/dir")).unwrap().type, "directory");
    (await m.remove("/tmp/dir/a.txt")).unwrap();
    const gone = await m.stat("/tmp/dir/a.txt");
    assert.ok(!gone.ok && isHyperfleetError(gone.error, "FILE_NOT_FOUND"));
    (await m.writeFile("/tmp/dir/sub/b", "x", { mkdirs: true })).unwrap();
    (await m.remove("/tmp/dir", { recursive: true })).unwrap();
    assert.ok(!(await m.stat("/tmp/dir")).ok);
    const missing = await m.readFile("/nope");
    assert.ok(!missing.ok && isHyperfleetError(missing.error, "FILE_NOT_FOUND"));
  });

  test("graceful stop ends the VM within a bound, and the disk survives a restart", async () => {
    (await m.writeFile("/root/keep.txt", "persisted")).unwrap();
    const pid = m.pid!;
    const t0 = Date.now();
    (await m.shutdown({ timeoutMs: 10_000 })).unwrap();
    const took = Date.now() - t0;
    assert.ok(took < 5_000, `graceful stop took ${took} ms`);
    assert.equal(await isAlive(pid), false);
    console.log(`graceful stop: ${took} ms`);
    (await m.start()).unwrap();
    assert.equal((await m.readFile("/root/keep.txt")).unwrap().toString(), "persisted");
  });

  test("a killed QEMU process is detected", async () => {
    const pid = m.pid!;
    process.kill(pid, "SIGKILL");
    const st = await m.exited();
    assert.equal(st.state, "exited");
    assert.equal(st.signal, "SIGKILL");
    const r = await m.exec(["true"]);
    assert.ok(!r.ok && (isHyperfleetError(r.error, "MACHINE_NOT_RUNNING") || isHyperfleetError(r.error, "AGENT_DISCONNECTED")));
    assert.equal((await m.status()).state, "exited");
  });
});

test("no qemu process is left behind by this file", async () => {
  assert.deepEqual(await leftoverQemu(), []);
});
