/**
 * HyperfleetClient against a real daemon on loopback (real VMs, a real registry): every call the
 * SDK offers, its errors as HyperfleetError with the API's codes and statuses, and the client's own
 * failures (unreachable, timeout, cancelled, oversized answers). One image machine boots (plus a
 * fork's clone); every check that needs no VM runs without one.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server, type Socket } from "node:net";
import { randomBytes } from "node:crypto";
import { HyperfleetClient, HyperfleetApiError, HyperfleetError, type Result } from "../../src/index.js";
import { freePort } from "../images/registry.js";
import { KEY, vmSkipReason } from "../api/helpers.js";
import { type ImageDaemon, startBusyboxDaemon, type BusyboxDaemon } from "../api/images-helpers.js";

const skip = vmSkipReason();
let fx: BusyboxDaemon | undefined;
let d: ImageDaemon;
let hf: HyperfleetClient;
let busybox = "";

before(async () => {
  if (skip) return;
  fx = await startBusyboxDaemon({ HYPERFLEET_WARM_TEMPLATES: "off" });
  ({ d, busybox } = fx);
  hf = new HyperfleetClient({ url: d.url, apiKey: KEY });
});

after(async () => {
  await fx?.close();
});

/** The error of a failed Result, checked to be a HyperfleetError with `code` (and `status`). */
function failed<T>(r: Result<T>, code: string, status?: number | null): HyperfleetApiError {
  assert.equal(r.ok, false, `expected ${code}, got ${JSON.stringify(r.ok ? r.value : null)?.slice(0, 200)}`);
  const e = (r as { error: unknown }).error;
  assert.ok(e instanceof HyperfleetError, "a HyperfleetError");
  assert.ok(e instanceof HyperfleetApiError);
  assert.equal(e.code, code, e.message);
  if (status !== undefined) assert.equal(e.status, status);
  assert.ok(e.message.length > 0);
  assert.throws(() => r.unwrap(), (x: unknown) => x === e);
  return e;
}

test("API errors: codes, statuses, request ids; malformed and unknown ids alike", { skip: skip ?? false }, async () => {
  const bad = new HyperfleetClient({ url: d.url, apiKey: "wrong-key-0123456789" });
  const auth = failed(await bad.machines.list(), "UNAUTHENTICATED", 401);
  assert.match(auth.requestId ?? "", /.+/, "the daemon's request id");
  failed(await hf.machines.get("vm_01J9Z6Y8W2V4T0S5R3Q1P7N9M8"), "MACHINE_NOT_FOUND", 404);
  failed(await hf.machines.get("not/an id"), "MACHINE_NOT_FOUND", 404);
  failed(await hf.machines.find("no-such-name"), "MACHINE_NOT_FOUND");
  const inv = failed(await hf.machines.create({ name: "bad name!", vcpu_count: 1, mem_size_mib: 256 }), "INVALID_ARGUMENT", 400);
  assert.equal(inv.details?.field, "name");
  failed(await hf.images.remove("127.0.0.1:1/none:1"), "IMAGE_NOT_CACHED", 404);
  failed(await hf.snapshots.get("snap_nope"), "SNAPSHOT_NOT_FOUND", 404);
  failed(await hf.snapshots.delete("snap_nope"), "SNAPSHOT_NOT_FOUND", 404);
  failed(await hf.machines.wait("vm_01J9Z6Y8W2V4T0S5R3Q1P7N9M8", { timeoutMs: 1000 }), "MACHINE_NOT_FOUND", 404);
});

test("the client's own failures: unreachable, timeout, cancelled, an answer over the bound", { skip: skip ?? false }, async () => {
  const nobody = new HyperfleetClient({ url: `http://127.0.0.1:${await freePort()}`, apiKey: KEY });
  failed(await nobody.machines.list(), "API_UNREACHABLE", null);

  // A server that takes the connection and never answers: only the client's deadline ends the call.
  const sockets = new Set<Socket>();
  const mute: Server = createServer((s) => void sockets.add(s));
  await new Promise<void>((r) => mute.listen(0, "127.0.0.1", r));
  try {
    const url = `http://127.0.0.1:${(mute.address() as { port: number }).port}`;
    const t0 = Date.now();
    failed(await new HyperfleetClient({ url, apiKey: KEY, timeoutMs: 300 }).machines.list(), "API_TIMEOUT", null);
    assert.ok(Date.now() - t0 < 10_000);
    const ac = new AbortController();
    const pending = new HyperfleetClient({ url, apiKey: KEY }).machines.list({ signal: ac.signal });
    setTimeout(() => ac.abort(), 100);
    failed(await pending, "OPERATION_CANCELLED", null);
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise((r) => mute.close(r));
  }
  failed(await hf.machines.list({ signal: AbortSignal.abort() }), "OPERATION_CANCELLED", null);

  (await hf.machines.create({ name: "big-answer", vcpu_count: 1, mem_size_mib: 128 })).unwrap();
  const tiny = new HyperfleetClient({ url: d.url, apiKey: KEY, maxResponseBytes: 64 });
  failed(await tiny.machines.list(), "API_RESPONSE_INVALID");
  const all = (await hf.machines.list()).unwrap();
  const m = all.find((x) => x.name === "big-answer")!;
  assert.equal((await hf.machines.find("big-answer")).unwrap().id, m.id, "found by name");
  (await hf.machines.delete(m.id)).unwrap();
});

test("HYPERFLEET_URL and HYPERFLEET_API_KEY are the defaults", { skip: skip ?? false }, async () => {
  const saved = { url: process.env.HYPERFLEET_URL, key: process.env.HYPERFLEET_API_KEY };
  process.env.HYPERFLEET_URL = d.url;
  process.env.HYPERFLEET_API_KEY = `${KEY},another-key-0123456789`;
  try {
    const c = new HyperfleetClient();
    assert.equal(c.url, d.url);
    assert.ok(Array.isArray((await c.machines.list()).unwrap()));
    // Options win over the environment.
    failed(await new HyperfleetClient({ apiKey: "wrong-key-0123456789" }).machines.list(), "UNAUTHENTICATED", 401);
  } finally {
    for (const [k, v] of [["HYPERFLEET_URL", saved.url], ["HYPERFLEET_API_KEY", saved.key]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
});

test("images: pull, list, remove", { skip: skip ?? false, timeout: 180_000 }, async () => {
  const img = (await hf.images.pull(busybox)).unwrap();
  assert.match(img.digest, /^sha256:[0-9a-f]{64}$/);
  assert.ok(img.refs.includes(busybox), JSON.stringify(img.refs));
  assert.ok((await hf.images.list()).unwrap().some((i) => i.digest === img.digest));
  (await hf.images.remove(busybox)).unwrap();
  assert.ok(!(await hf.images.list()).unwrap().some((i) => i.digest === img.digest));
  failed(await hf.images.pull("127.0.0.1:1/nothing/here:1", { timeoutMs: 60_000 }), "IMAGE_REGISTRY_UNREACHABLE", 502);
});

test("a machine's whole life through the SDK: lifecycle, exec, files, logs, pause, suspend, snapshots, fork", { skip: skip ?? false, timeout: 600_000 }, async () => {
  const created = (
    await hf.machines.create({
      name: "sdk-1",
      vcpu_count: 1,
      mem_size_mib: 256,
      image: busybox,
      cmd: ["sh", "-c", "echo first; while true; do echo tick; busybox sleep 1; done"],
      env: { GREETING: "from-sdk" },
      start: true,
    })
  ).unwrap();
  assert.equal(created.status, "starting");
  const id = created.id;
  const running = (await hf.machines.wait(id, { status: "running", timeoutMs: 180_000 })).unwrap();
  assert.equal(running.status, "running");
  assert.equal((await hf.machines.get(id)).unwrap().name, "sdk-1");
  assert.deepEqual((await hf.machines.list({ status: "running" })).unwrap().map((m) => m.id), [id]);
  assert.deepEqual((await hf.machines.list({ status: ["stopped", "failed"] })).unwrap(), []);
  assert.equal((await hf.machines.find("sdk-1")).unwrap().id, id);

  // exec: output, exit codes as values, stdin, env, base64, timeout.
  const r = (await hf.machines.exec(id, ["sh", "-c", 'echo "$GREETING"; echo err >&2; exit 3'])).unwrap();
  assert.deepEqual([r.exit_code, r.stdout, r.stderr], [3, "from-sdk\n", "err\n"]);
  assert.equal((await hf.machines.exec(id, ["sh", "-c", "read a; echo got:$a"], { stdin: "line\n" })).unwrap().stdout, "got:line\n");
  const b64 = (await hf.machines.exec(id, ["sh", "-c", "printf '\\377\\000'"], { encoding: "base64" })).unwrap();
  assert.deepEqual(Buffer.from(b64.stdout, "base64"), Buffer.from([0xff, 0]));
  const slow = failed(await hf.machines.exec(id, ["sh", "-c", "echo partial; busybox sleep 30"], { timeout: 1 }), "EXEC_TIMEOUT", 504);
  assert.equal(slow.details?.stdout, "partial\n");
  failed(await hf.machines.exec(id, ["no-such-command"]), "EXEC_NOT_FOUND", 400);

  // files: bytes round-trip, stat, delete.
  const data = randomBytes(300 * 1024);
  assert.equal((await hf.files.upload(id, "/tmp/sdk/blob.bin", data, { mode: 0o600 })).unwrap().size, data.length);
  assert.ok((await hf.files.download(id, "/tmp/sdk/blob.bin")).unwrap().equals(data));
  const st = (await hf.files.stat(id, "/tmp/sdk/blob.bin")).unwrap();
  assert.deepEqual([st.type, st.size, st.permissions], ["file", data.length, "0600"]);
  failed(await hf.files.download(id, "/tmp/sdk/blob.bin", { maxBytes: 1000 }), "API_RESPONSE_INVALID");
  failed(await hf.files.remove(id, "/tmp/sdk"), "FILE_NOT_EMPTY", 409);
  (await hf.files.remove(id, "/tmp/sdk", { recursive: true })).unwrap();
  failed(await hf.files.stat(id, "/tmp/sdk/blob.bin"), "FILE_NOT_FOUND", 404);

  // logs: whole, tail, followed until we have seen enough.
  const whole = (await hf.machines.logs(id)).unwrap().toString();
  assert.match(whole, /^first\n(tick\n)*/);
  assert.equal((await hf.machines.logs(id, { tail: 1 })).unwrap().toString(), "tick\n");
  const follow = (await hf.machines.followLogs(id, { tail: 0 })).unwrap();
  let seen = "";
  for await (const chunk of follow) {
    seen += chunk.toString();
    if ((seen.match(/tick/g) ?? []).length >= 2) break;
  }
  assert.match(seen, /tick\ntick\n/, "new output arrives while following");
  // Left before the first chunk: ends at once, and the iteration is over.
  const unread = (await hf.machines.followLogs(id)).unwrap();
  assert.deepEqual(await unread.return?.(undefined), { value: undefined, done: true });
  assert.deepEqual(await unread.next(), { value: undefined, done: true });

  // pause / resume, suspend / resume.
  assert.equal((await hf.machines.pause(id)).unwrap().status, "paused");
  failed(await hf.machines.exec(id, ["true"]), "MACHINE_PAUSED", 409);
  assert.equal((await hf.machines.resume(id)).unwrap().status, "running");
  assert.equal((await hf.machines.suspend(id)).unwrap().status, "suspended");
  assert.equal((await hf.machines.resume(id)).unwrap().status, "running");
  assert.equal((await hf.machines.exec(id, ["sh", "-c", "echo back"])).unwrap().stdout, "back\n");

  // snapshots and a fork (one clone, restored from the machine's memory).
  const snap = (await hf.snapshots.create(id)).unwrap();
  assert.equal(snap.machine_id, id);
  assert.equal((await hf.snapshots.get(snap.id)).unwrap().id, snap.id);
  assert.ok((await hf.snapshots.list()).unwrap().some((s) => s.id === snap.id));
  (await hf.snapshots.delete(snap.id)).unwrap();
  const [clone] = (await hf.machines.fork(id, { count: 1 })).unwrap();
  assert.ok(clone);
  (await hf.machines.wait(clone.id, { timeoutMs: 120_000 })).unwrap();
  assert.equal((await hf.machines.exec(clone.id, ["sh", "-c", "echo $GREETING"])).unwrap().stdout, "from-sdk\n");
  (await hf.machines.delete(clone.id)).unwrap();

  // stop, start, restart, a wait that times out, delete.
  assert.equal((await hf.machines.stop(id)).unwrap().status, "stopping");
  (await hf.machines.wait(id, { status: "stopped", timeoutMs: 60_000 })).unwrap();
  failed(await hf.machines.stop(id), "INVALID_STATE_TRANSITION", 409);
  failed(await hf.machines.wait(id, { status: "running", timeoutMs: 500 }), "WAIT_TIMEOUT", 408);
  assert.equal((await hf.machines.start(id)).unwrap().status, "starting");
  (await hf.machines.wait(id, { timeoutMs: 180_000 })).unwrap();
  (await hf.machines.restart(id)).unwrap();
  (await hf.machines.wait(id, { timeoutMs: 180_000 })).unwrap();
  assert.equal((await hf.machines.exec(id, ["sh", "-c", "true"])).unwrap().exit_code, 0);
  (await hf.machines.delete(id)).unwrap();
  failed(await hf.machines.get(id), "MACHINE_NOT_FOUND", 404);
});
