/**
 * The host side of Firecracker's hybrid vsock handshake (src/vmm/firecracker/vsock.ts) against a
 * stand-in that speaks Firecracker's exact protocol (test/vmm/hybrid-vsock-server.ts).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, test } from "node:test";
import { HyperfleetError, isHyperfleetError } from "../../src/core/errors.js";
import { AckReader, connectHybridVsock, MAX_ACK_LINE } from "../../src/vmm/firecracker/vsock.js";
import { type Behaviour, HybridVsockServer } from "../vmm/hybrid-vsock-server.js";

const dir = mkdtempSync(join(tmpdir(), "hf-hvsock-"));
let n = 0;
const servers: HybridVsockServer[] = [];
const sockets: Socket[] = [];

async function serve(b: (index: number) => Behaviour, path = join(dir, `v${n++}.sock`)): Promise<HybridVsockServer> {
  const s = await HybridVsockServer.listen(path, (req) => b(req.index));
  servers.push(s);
  return s;
}

function keep(s: Socket): Socket {
  sockets.push(s);
  return s;
}

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});
after(() => rmSync(dir, { recursive: true, force: true }));

async function rejection(p: Promise<unknown>): Promise<HyperfleetError> {
  try {
    await p;
  } catch (e) {
    assert.ok(isHyperfleetError(e), `expected a HyperfleetError, got ${String(e)}`);
    return e;
  }
  assert.fail("expected a rejection");
}

/** Waits (bounded) until the stand-in sees every connection closed: we hung up, not just stopped reading. */
async function allClosed(srv: HybridVsockServer): Promise<void> {
  const deadline = Date.now() + 3000;
  while (srv.openConnections > 0) {
    assert.ok(Date.now() < deadline, `${srv.openConnections} connection(s) still open`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Reads exactly `len` bytes, failing after 5 s (the stream is handed over paused, as a consumer would find it). */
function readExactly(s: Socket, len: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let got = 0;
    // Bytes lost in the handshake would otherwise show as a hang, not a failure.
    const timer = setTimeout(() => reject(new Error(`only ${got} of ${len} bytes arrived within 5 s`)), 5000);
    s.on("data", (b: Buffer) => {
      parts.push(b);
      got += b.length;
      if (got >= len) {
        clearTimeout(timer);
        resolve(Buffer.concat(parts).subarray(0, len));
      }
    });
    s.once("error", reject);
    s.once("close", () => reject(new Error(`closed after ${got} of ${len} bytes`)));
  });
}

test("sends CONNECT <port>\\n in one write and accepts an OK that arrives byte by byte", async () => {
  const srv = await serve(() => ({ kind: "ok", split: true }));
  keep(await connectHybridVsock(srv.path, 1024, { timeoutMs: 5000 }));
  assert.equal(srv.requests.length, 1);
  assert.equal(srv.requests[0]!.firstRead.toString(), "CONNECT 1024\n");
  assert.equal(srv.rejected, 0);
});

test("waits for a slow OK without reconnecting", async () => {
  const srv = await serve(() => ({ kind: "ok", delayMs: 300 }));
  const t0 = Date.now();
  keep(await connectHybridVsock(srv.path, 1024, { timeoutMs: 5000 }));
  assert.ok(Date.now() - t0 >= 290);
  assert.equal(srv.requests.length, 1);
});

test("EOF before OK means not listening yet: retries with backoff until the guest accepts", async () => {
  const srv = await serve((i) => (i < 3 ? { kind: "close" } : { kind: "ok" }));
  keep(await connectHybridVsock(srv.path, 1024, { timeoutMs: 5000, backoff: { initialMs: 10 } }));
  assert.equal(srv.requests.length, 4);
});

test("a guest that never accepts ends in AGENT_TIMEOUT naming the port, within the deadline", async () => {
  const srv = await serve(() => ({ kind: "close" }));
  const t0 = Date.now();
  const e = await rejection(connectHybridVsock(srv.path, 1024, { timeoutMs: 400, backoff: { initialMs: 10, maxMs: 50 } }));
  const took = Date.now() - t0;
  assert.equal(e.code, "AGENT_TIMEOUT");
  assert.match(e.message, /never accepted .* port 1024/);
  assert.match(e.message, /EOF before OK/);
  assert.ok(took >= 390 && took < 2000, `took ${took} ms`);
  assert.ok(srv.requests.length >= 3, `only ${srv.requests.length} attempts`);
});

test("an OK slower than the deadline ends in AGENT_TIMEOUT at the deadline", async () => {
  const srv = await serve(() => ({ kind: "ok", delayMs: 10_000 }));
  const t0 = Date.now();
  const e = await rejection(connectHybridVsock(srv.path, 1024, { timeoutMs: 300 }));
  assert.equal(e.code, "AGENT_TIMEOUT");
  assert.ok(Date.now() - t0 < 2000);
});

test("a reply that is not OK is AGENT_PROTOCOL_ERROR at once, without retrying", async () => {
  const srv = await serve(() => ({ kind: "raw", bytes: Buffer.from("ERR no such port\n"), keepOpen: true }));
  const e = await rejection(connectHybridVsock(srv.path, 1024, { timeoutMs: 5000 }));
  assert.equal(e.code, "AGENT_PROTOCOL_ERROR");
  assert.match(e.message, /ERR no such port/);
  assert.equal(srv.requests.length, 1);
});

test("OK without a number, or with trailing junk on the line, is a protocol error", async () => {
  for (const bad of ["OK\n", "OK \n", "OK 12x\n", "ok 5\n", "OK 5 6\n"]) {
    const srv = await serve(() => ({ kind: "raw", bytes: Buffer.from(bad), keepOpen: true }));
    const e = await rejection(connectHybridVsock(srv.path, 1024, { timeoutMs: 5000 }));
    assert.equal(e.code, "AGENT_PROTOCOL_ERROR", JSON.stringify(bad));
  }
});

test("a peer that never sends a newline cannot make us buffer: error after MAX_ACK_LINE bytes", async () => {
  const srv = await serve(() => ({ kind: "raw", bytes: Buffer.alloc(1024 * 1024, 0x41), keepOpen: true }));
  const e = await rejection(connectHybridVsock(srv.path, 1024, { timeoutMs: 5000 }));
  assert.equal(e.code, "AGENT_PROTOCOL_ERROR");
  assert.match(e.message, new RegExp(`within ${MAX_ACK_LINE} bytes`));
  assert.equal(srv.requests.length, 1);
  await allClosed(srv);
});

test("AckReader keeps at most MAX_ACK_LINE bytes and fails as soon as a line would exceed them", () => {
  const r = new AckReader(1024);
  for (let i = 0; i < MAX_ACK_LINE; i++) assert.deepEqual(r.push(Buffer.from("O")), { done: false });
  assert.throws(() => r.push(Buffer.from("O")), (e) => isHyperfleetError(e, "AGENT_PROTOCOL_ERROR"));
  const ok = new AckReader(1024);
  assert.deepEqual(ok.push(Buffer.from("OK 7")), { done: false });
  const done = ok.push(Buffer.from("\nrest"));
  assert.ok(done.done);
  assert.equal(done.hostPort, 7);
  assert.equal(done.rest.toString(), "rest");
});

for (const split of [false, true]) {
  test(`bytes that follow OK${split ? " (split OK)" : " in the same write"} reach the caller intact`, async () => {
    const payload = Buffer.concat([Buffer.from("\nOK 99\nREADY"), randomBytes(200_000)]);
    const srv = await serve(() => ({ kind: "ok", split, trailing: payload }));
    const s = keep(await connectHybridVsock(srv.path, 1024, { timeoutMs: 5000 }));
    const got = await readExactly(s, payload.length);
    assert.ok(got.equals(payload), "payload after OK differs");
  });
}

test("the returned socket carries traffic both ways", async () => {
  let echoed: Promise<Buffer> | undefined;
  const srv = await serve(() => ({
    kind: "ok",
    onSocket: (s) => {
      echoed = readExactly(s, 5);
    },
  }));
  const s = keep(await connectHybridVsock(srv.path, 1024, { timeoutMs: 5000 }));
  s.write("hello");
  assert.ok(echoed);
  assert.equal((await echoed).toString(), "hello");
});

test("a missing uds (Firecracker not up yet) is retried until it appears", async () => {
  const path = join(dir, `late${n++}.sock`);
  const p = connectHybridVsock(path, 1024, { timeoutMs: 5000, backoff: { initialMs: 10, maxMs: 50 } });
  setTimeout(() => void serve(() => ({ kind: "ok" }), path), 200);
  keep(await p);
});

test("a uds that refuses (ECONNREFUSED) is retried until something listens", async () => {
  const path = join(dir, `refuse${n++}.sock`);
  writeFileSync(path, "not a socket");
  const p = connectHybridVsock(path, 1024, { timeoutMs: 5000, backoff: { initialMs: 10, maxMs: 50 } });
  setTimeout(() => {
    unlinkSync(path);
    void serve(() => ({ kind: "ok" }), path);
  }, 200);
  keep(await p);
});

test("a missing uds until the deadline says so in the timeout", async () => {
  const e = await rejection(connectHybridVsock(join(dir, "never.sock"), 1024, { timeoutMs: 200 }));
  assert.equal(e.code, "AGENT_TIMEOUT");
  assert.match(e.message, /ENOENT/);
});

test("abort while retrying rejects promptly with OPERATION_CANCELLED", async () => {
  const srv = await serve(() => ({ kind: "close" }));
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 150);
  const t0 = Date.now();
  const e = await rejection(connectHybridVsock(srv.path, 1024, { timeoutMs: 10_000, signal: ac.signal }));
  assert.equal(e.code, "OPERATION_CANCELLED");
  assert.ok(Date.now() - t0 < 2000);
});

test("abort while waiting for OK closes the connection", async () => {
  const srv = await serve(() => ({ kind: "ok", delayMs: 10_000 }));
  const ac = new AbortController();
  const p = connectHybridVsock(srv.path, 1024, { timeoutMs: 20_000, signal: ac.signal });
  while (srv.requests.length === 0) await new Promise((r) => setTimeout(r, 5));
  ac.abort();
  const e = await rejection(p);
  assert.equal(e.code, "OPERATION_CANCELLED");
  await allClosed(srv);
});

test("an already-aborted signal never connects", async () => {
  const srv = await serve(() => ({ kind: "ok" }));
  const e = await rejection(connectHybridVsock(srv.path, 1024, { signal: AbortSignal.abort() }));
  assert.equal(e.code, "OPERATION_CANCELLED");
  assert.equal(srv.requests.length, 0);
});

test("a port that is not a u32 is INVALID_ARGUMENT", async () => {
  for (const p of [-1, 1.5, 2 ** 32, Number.NaN]) {
    const e = await rejection(connectHybridVsock(join(dir, "x.sock"), p));
    assert.equal(e.code, "INVALID_ARGUMENT");
  }
});
