/**
 * The production path: hf-agent as PID 1 of a QEMU microvm, serving on the virtio-serial port.
 * What only a real virtio_console shows: READY is written when the host connects; a host
 * disconnect kills that connection's processes; a reconnect the guest did not notice is recovered
 * by HELLO (docs/agent-protocol.md, "Reconnecting on virtio-serial"); after a malformed frame the
 * guest, which cannot hang up a serial port, ignores the host until it reconnects. Skipped where
 * QEMU, a kernel with virtio modules or a static busybox are missing.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { after, before, test } from "node:test";
import { decodeFields, encodeHeader } from "../../src/agent/codec.js";
import { DEFAULT_LOG_PATH, MsgType, Tag } from "../../src/agent/protocol.js";
import { buildAgent, cleanupAll, type Conn, Errno, sleep } from "./harness.js";
import { Vm, vmPrerequisites } from "./vm.js";

const missing = vmPrerequisites();
const opts = { skip: missing ?? false, timeout: 120_000 };
let vm: Vm;

before(async () => {
  if (missing) return;
  buildAgent();
  vm = await Vm.boot("vmtest");
});
after(async () => {
  await vm?.kill();
  await cleanupAll();
});

/** Starts an exec whose shell backgrounds a sleep; returns both pids. */
async function startSleeper(c: Conn): Promise<{ pid: number; grandchild: number }> {
  const id = c.allocId();
  c.sendFields(MsgType.EXEC, 0, id, [[Tag.ARG, "sh"], [Tag.ARG, "-c"], [Tag.ARG, "sleep 300 & echo $!; wait"]]);
  const pid = decodeFields((await c.next(id)).payload).u32(Tag.PID)!;
  const grandchild = Number((await c.next(id)).payload.toString().trim());
  return { pid, grandchild };
}

async function assertGone(c: Conn, pids: number[]): Promise<void> {
  const probe = pids.map((p) => `kill -0 ${p} 2>/dev/null && echo alive-${p};`).join(" ");
  const r = await c.exec(["sh", "-c", `sleep 0.2; ${probe} echo checked`]);
  assert.equal(r.stdout.toString(), "checked\n");
}

async function hangUp(c: Conn): Promise<void> {
  c.close();
  await c.closed;
}

test("virtio-serial: READY on connect, PID 1 duties done, exec and files work", opts, async (t) => {
  const t0 = Date.now();
  const c = await vm.open();
  t.diagnostic(`READY ${Date.now() - t0} ms after QEMU was spawned (TCG)`);
  await c.hello();
  const r = await c.exec(["sh", "-c", "hostname; cat /proc/1/comm; grep -c tmpfs /proc/mounts; ip -o link show lo"]);
  const [hostname, comm, tmpfs, lo] = r.stdout.toString().trim().split("\n");
  assert.equal(hostname, "vmtest");
  assert.equal(comm, "hf-agent");
  assert.ok(Number(tmpfs) >= 3, "tmpfs on /tmp, /run, /dev/shm");
  assert.match(lo ?? "", /<[^>]*\bUP\b/);

  const data = randomBytes(4 * 1024 * 1024);
  let s = process.hrtime.bigint();
  await c.writeFile("/tmp/blob", data);
  const wMs = Number(process.hrtime.bigint() - s) / 1e6;
  s = process.hrtime.bigint();
  const back = await c.readFile("/tmp/blob");
  const rMs = Number(process.hrtime.bigint() - s) / 1e6;
  assert.equal(createHash("sha256").update(back.data).digest("hex"), createHash("sha256").update(data).digest("hex"));
  t.diagnostic(`4 MiB over virtio-serial (TCG): write ${(4000 / wMs).toFixed(0)} MiB/s, read ${(4000 / rMs).toFixed(0)} MiB/s`);

  for (let i = 0; i < 50; i++) await c.request(MsgType.PING, []);
  const n = 500;
  s = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await c.request(MsgType.PING, []);
  t.diagnostic(`ping over virtio-serial (TCG): mean ${(Number(process.hrtime.bigint() - s) / 1000 / n).toFixed(0)} us`);
  await hangUp(c);
});

test("virtio-serial: after a disconnect the guest kills the session's processes and sends READY again", opts, async () => {
  const first = await vm.session();
  const { pid, grandchild } = await startSleeper(first);
  await hangUp(first);
  await sleep(500); // long enough for the guest to see the host go
  const second = await vm.open(20_000);
  await second.hello();
  await assertGone(second, [pid, grandchild]);
  await hangUp(second);
});

test("virtio-serial: an immediate reconnect the guest cannot see is recovered by HELLO", opts, async () => {
  const first = await vm.session();
  const { pid, grandchild } = await startSleeper(first);
  // Fill the pipe with output the first host never reads, then leave and come back at once.
  first.sendFields(MsgType.EXEC, 0, first.allocId(), [[Tag.ARG, "sh"], [Tag.ARG, "-c"], [Tag.ARG, "head -c 300000 /dev/zero"]]);
  await hangUp(first);
  let retries = 0;
  const second = await vm.session({ attempts: 3, onRetry: () => retries++ });
  assert.equal(retries, 0, "HELLO alone must recover an unnoticed reconnect");
  assert.equal((await second.request(MsgType.PING, [])).type, MsgType.PONG);
  await assertGone(second, [pid, grandchild]);
  await hangUp(second);
});

test("virtio-serial: after a malformed frame the guest ignores the host until it reconnects", opts, async () => {
  const bad = await vm.session();
  const h = encodeHeader(MsgType.PING, 0, 1, 0);
  h.writeUInt16LE(1, 6);
  bad.socket.write(h);
  const err = await bad.next(0);
  assert.equal(err.type, MsgType.ERROR);
  assert.equal(decodeFields(err.payload).u32(Tag.ERRNO), Errno.EPROTO);
  const id = bad.allocId();
  bad.send(MsgType.PING, 0, id);
  await sleep(500);
  assert.equal(bad.pending(id).length, 0, "a PING after the violation must not be answered");
  await hangUp(bad);

  const good = await vm.session({ attempts: 3 });
  assert.equal((await good.request(MsgType.PING, [])).type, MsgType.PONG);
  await hangUp(good);
});

test("virtio-serial: a detached process outlives the host and its output keeps flowing while no host is connected", opts, async (t) => {
  const first = await vm.session();
  // 40 x 32 KiB, several times the pipe: it only gets written while we are away if the guest keeps
  // draining the pipe without a host (rather than sleeping in the blocking READY write).
  const script = "i=0; while [ $i -lt 40 ]; do head -c 32767 /dev/zero | tr '\\0' x; echo \" $i\"; i=$((i+1)); done; echo done; exec sleep 300";
  const t0 = Date.now();
  const pid = await first.execDetached(["sh", "-c", script]);
  await hangUp(first);
  await sleep(5000);
  const second = await vm.session();
  const log = (await second.readFile(DEFAULT_LOG_PATH)).data.toString();
  t.diagnostic(`log has ${log.length} bytes ${Date.now() - t0} ms after the start`);
  const lines = log.split("\n");
  assert.equal(lines.length, 42, `the whole output was written while no host was connected (${log.length} bytes)`);
  lines.slice(0, 40).forEach((l, i) => assert.equal(l, `${"x".repeat(32767)} ${i}`));
  assert.equal(lines[40], "done");
  assert.match((await second.readFile(`${DEFAULT_LOG_PATH}.status`)).data.toString(), new RegExp(`^running ${pid} \\d+\\n$`));
  await second.exec(["kill", String(pid)]);
  await second.waitForFile(`${DEFAULT_LOG_PATH}.status`, /^exited -1 15 /);
  await hangUp(second);
});

test("virtio-serial: SHUTDOWN is answered OK and the VM powers off", opts, async () => {
  const c = await vm.session();
  assert.equal((await c.request(MsgType.SHUTDOWN, [])).type, MsgType.OK);
  const code = await Promise.race([vm.exited, sleep(30_000).then(() => "timeout")]);
  assert.equal(code, 0, `QEMU did not exit cleanly; console:\n${vm.console()}`);
});
