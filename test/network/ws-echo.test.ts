/**
 * The WebSocket echo server the guests run (test/fixtures/ws-echo.c), checked on the host's
 * loopback (127.0.0.1 only) with the tests' own client: handshake, echo of text, binary, large and
 * fragmented messages, ping/pong, close, and the frame-size bound.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { connect } from "node:net";
import { after, before, test } from "node:test";
import { buildStaticFixture, staticFixtureSkipReason, type Built } from "./static-fixture.js";
import { Op, WsClient } from "./ws-client.js";

const skip = staticFixtureSkipReason() ?? false;
let PORT = 0;
let built: Built | undefined;
let server: ChildProcess | undefined;

before(async () => {
  if (skip) return;
  built = await buildStaticFixture("ws-echo");
  // Port 0: the kernel picks a free one (other tests share this loopback), ws-echo says which.
  server = spawn(built.path, ["0", "127.0.0.1"], { stdio: ["ignore", "ignore", "pipe"] });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("ws-echo did not listen in 10 s")), 10_000);
    let said = "";
    server!.stderr!.on("data", (d: Buffer) => {
      said += d.toString();
      const m = /listening on 127\.0\.0\.1:(\d+)\n/.exec(said);
      if (!m) return;
      PORT = Number(m[1]);
      clearTimeout(timer);
      resolve();
    });
    server!.once("exit", (c) => (clearTimeout(timer), reject(new Error(`ws-echo exited with ${c}`))));
  });
});
after(async () => {
  if (server && server.exitCode === null) {
    const gone = new Promise((r) => server!.once("exit", r));
    server.kill("SIGKILL");
    await gone;
  }
  await built?.remove();
});

const open = () => WsClient.connect("127.0.0.1", PORT, 10_000);

test("text, binary, 64 KiB+ and fragmented messages come back as sent", { skip }, async () => {
  const ws = await open();
  try {
    ws.send(Op.text, "hello");
    assert.deepEqual(await ws.next(5000), { fin: true, opcode: Op.text, payload: Buffer.from("hello") });
    const bin = Buffer.from([0, 1, 2, 255, 254]);
    ws.send(Op.binary, bin);
    assert.deepEqual(await ws.next(5000), { fin: true, opcode: Op.binary, payload: bin });
    const big = Buffer.alloc(200_000, 7);
    big[123_456] = 9;
    ws.send(Op.binary, big);
    const back = await ws.next(10_000);
    assert.equal(back.payload.length, big.length);
    assert.ok(back.payload.equals(big));
    ws.send(Op.text, "ab", false);
    ws.send(Op.continuation, "cd", true);
    assert.deepEqual(await ws.next(5000), { fin: false, opcode: Op.text, payload: Buffer.from("ab") });
    assert.deepEqual(await ws.next(5000), { fin: true, opcode: Op.continuation, payload: Buffer.from("cd") });
  } finally {
    ws.destroy();
  }
});

test("a ping gets a pong with its payload; a close gets a close with its code", { skip }, async () => {
  const ws = await open();
  try {
    ws.send(Op.ping, "p-1");
    assert.deepEqual(await ws.next(5000), { fin: true, opcode: Op.pong, payload: Buffer.from("p-1") });
    ws.send(Op.close, Buffer.from([0x03, 0xe8]));
    assert.deepEqual(await ws.next(5000), { fin: true, opcode: Op.close, payload: Buffer.from([0x03, 0xe8]) });
    await assert.rejects(ws.next(5000), /connection closed/);
  } finally {
    ws.destroy();
  }
});

test("a frame over 1 MiB gets close 1009, not a 1 MiB+ allocation", { skip }, async () => {
  const ws = await open();
  try {
    ws.send(Op.binary, Buffer.alloc((1 << 20) + 1));
    const f = await ws.next(10_000);
    assert.equal(f.opcode, Op.close);
    assert.equal(f.payload.readUInt16BE(0), 1009);
  } finally {
    ws.destroy();
  }
});

test("a request without Sec-WebSocket-Key gets 400; the server goes on serving", { skip }, async () => {
  const answer = await new Promise<string>((resolve, reject) => {
    const s = connect(PORT, "127.0.0.1", () => s.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    let got = "";
    s.on("data", (d) => (got += d.toString())).on("close", () => resolve(got)).on("error", reject);
    s.setTimeout(5000, () => s.destroy(new Error("no answer in 5 s")));
  });
  assert.match(answer, /^HTTP\/1\.1 400 /);
  (await open()).destroy();
});
