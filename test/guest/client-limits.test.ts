/**
 * The host client's bounds and cancellation (src/agent/client.ts) against the real hf-agent over
 * --unix: exec output caps, readFile maxBytes, and aborting reads and writes, which must also end
 * the guest side (CANCEL) and leave the connection usable.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { AgentClient } from "../../src/agent/client.js";
import { HyperfleetError, isHyperfleetError } from "../../src/core/errors.js";
import { Agent, buildAgent, cleanupAll, connectSocket, sleep, tempDir } from "./harness.js";

const MiB = 1024 * 1024;
let agent: Agent;
let client: AgentClient;
let dir: string;

before(async () => {
  buildAgent();
  agent = await Agent.start();
  client = await AgentClient.connect(await connectSocket(agent.socketPath), { timeoutMs: 5000 });
  dir = tempDir();
});
after(async () => {
  client.close();
  await cleanupAll();
});

/** Settles p, failing the test instead of hanging when it does not settle within ms. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error(`${what} did not settle within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

async function rejection(p: Promise<unknown>, ms: number, what: string): Promise<HyperfleetError> {
  const e = await within(p, ms, what).then(
    () => assert.fail(`${what} should have failed`),
    (err: unknown) => err,
  );
  assert.ok(isHyperfleetError(e), String(e));
  return e;
}

test("exec of `yes` with maxOutputBytes keeps exactly that much stdout, flags it, and memory stays bounded", async (t) => {
  global.gc?.();
  const base = process.memoryUsage().rss;
  let peak = base;
  // Guards the machine when the cap does not work: `yes` would otherwise collect gigabytes.
  const guard = new AbortController();
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
    if (peak - base > 512 * MiB) guard.abort();
  }, 50);
  try {
    const r = await client.exec(["yes"], { maxOutputBytes: MiB, timeoutMs: 3000, signal: guard.signal });
    assert.equal(guard.signal.aborted, false, `RSS grew by ${((peak - base) / MiB).toFixed(0)} MiB`);
    assert.equal(r.timedOut, true);
    assert.equal(r.stdout.length, MiB);
    assert.equal(r.stdoutTruncated, true);
    assert.equal(r.stderrTruncated, false);
    assert.equal(r.stdout.toString(), "y\n".repeat(MiB / 2));
  } finally {
    clearInterval(sampler);
  }
  t.diagnostic(`RSS grew by at most ${((peak - base) / MiB).toFixed(0)} MiB`);
  assert.ok(peak - base < 128 * MiB, `RSS grew by ${((peak - base) / MiB).toFixed(0)} MiB`);

  const small = await client.exec(["sh", "-c", "echo out; echo err >&2"], { maxOutputBytes: MiB });
  assert.deepEqual([small.stdout.toString(), small.stderr.toString(), small.stdoutTruncated, small.stderrTruncated], ["out\n", "err\n", false, false]);
  const exact = await client.exec(["sh", "-c", "printf 1234567890"], { maxOutputBytes: 4 });
  assert.deepEqual([exact.stdout.toString(), exact.stdoutTruncated], ["1234", true]);
});

test("readFile of /proc/self/pagemap (size 0, hundreds of GiB) with maxBytes fails FILE_TOO_LARGE quickly", async () => {
  const e = await rejection(client.readFile("/proc/self/pagemap", { maxBytes: 4 * MiB }), 20_000, "readFile");
  assert.equal(e.code, "FILE_TOO_LARGE");
  assert.match(e.message, /\/proc\/self\/pagemap is larger than 4194304 bytes/);
  assert.deepEqual(e.details, { limit: 4 * MiB });
  await within(client.ping(), 5000, "ping");
  // Exactly maxBytes is not too large; one more byte is.
  const path = join(dir, "exact.bin");
  writeFileSync(path, Buffer.alloc(1000, 7));
  assert.equal((await client.readFile(path, { maxBytes: 1000 })).length, 1000);
  assert.equal((await rejection(client.readFile(path, { maxBytes: 999 }), 5000, "readFile")).code, "FILE_TOO_LARGE");
  assert.equal((await client.readFile(path, { maxBytes: 999, offset: 1 })).length, 999);
  assert.equal((await client.readFile(path, { maxBytes: 999, length: 999 })).length, 999);
  assert.equal((await rejection(client.readFile(path, { maxBytes: -1 }), 1000, "readFile")).code, "INVALID_ARGUMENT");
  assert.throws(() => client.exec(["true"], { maxOutputBytes: Number.NaN }), (e: unknown) => isHyperfleetError(e, "INVALID_ARGUMENT"));
});

test("aborting a readFile cancels the READ in the guest and rejects at once", async () => {
  const ac = new AbortController();
  let chunks = 0;
  const p = client.readFile("/proc/self/pagemap", {
    signal: ac.signal,
    onChunk: () => {
      if (++chunks === 2) ac.abort();
    },
  });
  const e = await rejection(p, 20_000, "aborted readFile");
  assert.equal(e.code, "OPERATION_CANCELLED");
  await within(client.ping(), 5000, "ping");
  // The guest stopped sending: no more chunks reach the (already settled) operation's callback.
  const seen = chunks;
  await sleep(300);
  assert.equal(chunks, seen);

  // A HyperfleetError reason (the caller's own deadline) is what the call rejects with.
  const deadline = new AbortController();
  const reason = new HyperfleetError("FILE_TRANSFER_TIMEOUT", "download took too long");
  const q = client.readFile("/proc/self/pagemap", { signal: deadline.signal, onChunk: () => deadline.abort(reason) });
  assert.equal(await rejection(q, 20_000, "readFile"), reason);
  await within(client.ping(), 5000, "ping");
  const pre = new AbortController();
  pre.abort();
  assert.equal((await rejection(client.readFile("/etc/hostname", { signal: pre.signal }), 1000, "readFile")).code, "OPERATION_CANCELLED");
});

test("aborting a writeFile stops the upload, removes the guest's temp file and rejects at once", async () => {
  const sub = join(dir, "upload");
  mkdirSync(sub);
  const target = join(sub, "target");
  writeFileSync(target, "original");
  const ac = new AbortController();
  let released: () => void = () => undefined;
  async function* source(): AsyncIterable<Buffer> {
    yield Buffer.alloc(256 * 1024, 1);
    // A client that stalls mid-upload: nothing more comes until the abort.
    await new Promise<void>((res) => (released = res));
    yield Buffer.alloc(256 * 1024, 2);
  }
  const p = client.writeFile(target, source(), { signal: ac.signal });
  for (let i = 0; i < 200 && readdirSync(sub).length < 2; i++) await sleep(10);
  assert.equal(readdirSync(sub).length, 2, "temp file exists during the upload");
  ac.abort();
  const e = await rejection(p, 5000, "aborted writeFile");
  assert.equal(e.code, "OPERATION_CANCELLED");
  released();
  await within(client.ping(), 5000, "ping");
  for (let i = 0; i < 200 && readdirSync(sub).length > 1; i++) await sleep(10);
  assert.deepEqual(readdirSync(sub), ["target"]);
  assert.equal(existsSync(target), true);
  // The connection is still fine for uploads.
  assert.equal(await client.writeFile(target, Buffer.from("new")), 3);
});
