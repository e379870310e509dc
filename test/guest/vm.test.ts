/**
 * The production path: hf-agent as PID 1 of a QEMU microvm, serving on the virtio-serial port.
 * What only a real virtio_console shows: READY is written when the host connects, a host
 * disconnect kills that connection's processes and READY comes again on the next connection, and
 * after a malformed frame the guest (which cannot hang up a serial port) ignores the host until it
 * reconnects. Skipped where QEMU, a kernel or busybox are missing.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { after, before, test } from "node:test";
import { decodeFields, encodeHeader } from "../../src/agent/codec.js";
import { MsgType, Tag } from "../../src/agent/protocol.js";
import { buildAgent, cleanupAll, type Conn, Errno, ProtocolError, sleep } from "./harness.js";
import { Vm, vmPrerequisites } from "./vm.js";

const missing = vmPrerequisites();
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

async function hello(c: Conn): Promise<Conn> {
  await c.hello();
  return c;
}

test("virtio-serial: READY on connect, PID 1 duties done, exec and files work", { skip: missing ?? false, timeout: 120_000 }, async (t) => {
  const t0 = Date.now();
  const c = await hello(await vm.open());
  t.diagnostic(`READY ${Date.now() - t0} ms after QEMU was spawned (TCG)`);
  try {
    const r = await c.exec(["sh", "-c", "echo $$; hostname; cat /proc/1/comm; grep -c tmpfs /proc/mounts; ip -o link show lo"]);
    const lines = r.stdout.toString().trim().split("\n");
    assert.equal(lines[1], "vmtest");
    assert.equal(lines[2], "hf-agent");
    assert.ok(Number(lines[3]) >= 3, "tmpfs on /tmp, /run, /dev/shm");
    assert.match(lines[4] ?? "", /<[^>]*\bUP\b/);

    const data = randomBytes(4 * 1024 * 1024);
    await c.writeFile("/tmp/blob", data);
    const back = await c.readFile("/tmp/blob");
    assert.equal(createHash("sha256").update(back.data).digest("hex"), createHash("sha256").update(data).digest("hex"));

    for (let i = 0; i < 50; i++) await c.request(MsgType.PING, []);
    const n = 500;
    const start = process.hrtime.bigint();
    for (let i = 0; i < n; i++) await c.request(MsgType.PING, []);
    t.diagnostic(`ping over virtio-serial (TCG): mean ${(Number(process.hrtime.bigint() - start) / 1000 / n).toFixed(0)} us`);
  } finally {
    c.close();
  }
});

test("virtio-serial: a host disconnect kills the connection's processes; READY again on reconnect", { skip: missing ?? false, timeout: 120_000 }, async () => {
  const first = await hello(await vm.open());
  const id = first.allocId();
  first.sendFields(MsgType.EXEC, 0, id, [[Tag.ARG, "sh"], [Tag.ARG, "-c"], [Tag.ARG, "sleep 300 & echo $!; wait"]]);
  const pid = decodeFields((await first.next(id)).payload).u32(Tag.PID)!;
  const grandchild = Number((await first.next(id)).payload.toString().trim());
  first.close();
  await first.closed;

  const second = await vm.open(20_000);
  // A new connection starts over: HELLO is needed again.
  await assert.rejects(second.request(MsgType.PING, []), (e: unknown) => e instanceof ProtocolError && e.errno === Errno.EPROTO);
  await hello(second);
  const check = await second.exec(["sh", "-c", `sleep 0.2; kill -0 ${pid} 2>/dev/null && echo alive; kill -0 ${grandchild} 2>/dev/null && echo alive; echo checked`]);
  assert.equal(check.stdout.toString(), "checked\n");
  second.close();
  await second.closed;
});

test("virtio-serial: after a malformed frame the guest ignores the host until it reconnects", { skip: missing ?? false, timeout: 120_000 }, async () => {
  const bad = await hello(await vm.open(20_000));
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
  bad.close();
  await bad.closed;

  const good = await hello(await vm.open(20_000));
  assert.equal((await good.request(MsgType.PING, [])).type, MsgType.PONG);
  good.close();
  await good.closed;
});

test("virtio-serial: SHUTDOWN is answered OK and the VM powers off", { skip: missing ?? false, timeout: 120_000 }, async () => {
  const c = await hello(await vm.open(20_000));
  assert.equal((await c.request(MsgType.SHUTDOWN, [])).type, MsgType.OK);
  const code = await Promise.race([vm.exited, sleep(30_000).then(() => "timeout")]);
  assert.equal(code, 0, `QEMU did not exit cleanly; console:\n${vm.console()}`);
});
