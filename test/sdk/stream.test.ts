/**
 * The SDK's streaming calls against a real daemon (a child process) and a real VM: exec over the
 * WebSocket (stdout, stderr, exit, stdin, a PTY and its resize, errors as HyperfleetApiError),
 * background processes, the file tree calls, streamed and tar transfers, and a 1 GiB download
 * through the SDK with the daemon's peak RSS within +256 MiB.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { HyperfleetClient, HyperfleetApiError, type ExecStream } from "../../src/index.js";
import { KEY, vmSkipReason } from "../api/helpers.js";
import { memMib, resetPeak, startChildMachine, type ChildMachine } from "../api/child-machine.js";

const skip = vmSkipReason();
const GIB = 1024 * 1024 * 1024;
let m: ChildMachine;
let hf: HyperfleetClient;

before(async () => {
  if (skip) return;
  m = await startChildMachine({ HYPERFLEET_FILE_MAX_SIZE: String(GIB) });
  hf = new HyperfleetClient({ url: m.d.url, apiKey: KEY });
});
after(async () => {
  if (m) await m.close();
});

async function collect(r: Readable): Promise<string> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts).toString("utf8");
}

async function run(command: string[], opts: Parameters<HyperfleetClient["machines"]["execStream"]>[2] = {}): Promise<ExecStream> {
  return (await hf.machines.execStream(m.id, command, opts)).unwrap();
}

test("execStream: stdout and stderr apart, the exit code, stdin written and ended", { skip: skip ?? false, timeout: 120_000 }, async () => {
  const s = await run(["sh", "-c", "echo out; echo err >&2; exit 3"], { stdin: false });
  const [out, errText, done] = await Promise.all([collect(s.stdout), collect(s.stderr), s.done]);
  assert.equal(out, "out\n");
  assert.equal(errText, "err\n");
  assert.equal(done.unwrap().exit_code, 3);
  assert.ok((await s.started).unwrap() > 0, "the guest pid");

  const cat = await run(["sh", "-c", "tr a-z A-Z; echo done"]);
  await cat.write("hello ");
  await cat.write(new Uint8Array(Buffer.from("world\n")));
  cat.end();
  assert.equal(await collect(cat.stdout), "HELLO WORLD\ndone\n");
  assert.equal((await cat.done).unwrap().exit_code, 0);
});

test("execStream: a signal ends the command; a missing command and a bad machine are coded errors", { skip: skip ?? false, timeout: 120_000 }, async () => {
  const s = await run(["sleep", "60"], { stdin: false });
  (await s.started).unwrap();
  s.signal("SIGTERM");
  const d = (await s.done).unwrap();
  assert.equal(d.exit_code, null);
  assert.equal(d.signal, 15);

  const nf = await (await run(["/no/such/cmd"])).done;
  assert.equal(nf.ok, false);
  assert.ok(!nf.ok && nf.error instanceof HyperfleetApiError && nf.error.code === "EXEC_NOT_FOUND", String(!nf.ok && nf.error));

  const gone = await hf.machines.execStream("vm_01J9Z6Y8W2V4T0S5R3Q1P7N9M8", ["true"]);
  assert.equal(gone.ok, false);
  assert.ok(!gone.ok && gone.error instanceof HyperfleetApiError && gone.error.code === "MACHINE_NOT_FOUND" && gone.error.status === 404);
});

test("execStream on a PTY: size given at start, then resized", { skip: skip ?? false, timeout: 120_000 }, async () => {
  const s = await run(["sh", "-c", "stty size; read x; stty size"], { tty: { rows: 30, cols: 100 } });
  let seen = "";
  s.stdout.on("data", (c: Buffer) => (seen += c.toString()));
  const deadline = Date.now() + 30_000;
  while (!seen.includes("30 100") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.match(seen, /30 100/);
  s.resize(40, 120);
  // Sent after the resize on the same socket: the guest applies the size first.
  await s.write("\n");
  assert.equal((await s.done).unwrap().exit_code, 0);
  assert.match(seen, /40 120/);
});

test("processes: start, list, output followed to the end, signal", { skip: skip ?? false, timeout: 120_000 }, async () => {
  const p = (await hf.processes.start(m.id, { command: ["sh", "-c", "echo one; sleep 1; echo two"] })).unwrap();
  assert.equal(p.status, "running");
  assert.ok((await hf.processes.list(m.id)).unwrap().some((x) => x.pid === p.pid));
  let text = "";
  for await (const c of (await hf.processes.output(m.id, p.pid, { follow: true })).unwrap()) text += c.toString();
  assert.match(text, /one\ntwo\n/);
  const ended = (await hf.processes.list(m.id)).unwrap().find((x) => x.pid === p.pid);
  assert.equal(ended?.status, "exited");
  assert.equal(ended?.exit_code, 0);

  const long = (await hf.processes.start(m.id, { command: ["sleep", "600"] })).unwrap();
  (await hf.processes.signal(m.id, long.pid, "SIGKILL")).unwrap();
  const again = await hf.processes.signal(m.id, 4_000_000, 15);
  assert.ok(!again.ok && again.error instanceof HyperfleetApiError && again.error.code === "PROCESS_NOT_FOUND", String(!again.ok && again.error));
});

test("files: mkdir, rename, list, streamed upload and download, a tree as tar both ways", { skip: skip ?? false, timeout: 120_000 }, async () => {
  (await hf.files.mkdir(m.id, "/sdk/a/b")).unwrap();
  const data = Buffer.alloc(3 * 1024 * 1024 + 7);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff;
  // A node Readable in 64 KiB chunks: the body is sent as it is read.
  const chunks = function* () {
    for (let o = 0; o < data.length; o += 65536) yield data.subarray(o, o + 65536);
  };
  const up = (await hf.files.uploadStream(m.id, "/sdk/a/b/f.bin", Readable.from(chunks()), { mode: 0o600 })).unwrap();
  assert.equal(up.size, data.length);
  (await hf.files.rename(m.id, "/sdk/a/b/f.bin", "/sdk/a/g.bin")).unwrap();
  const l = (await hf.files.list(m.id, "/sdk/a")).unwrap();
  assert.deepEqual(l.entries.map((e) => [e.name, e.type]), [["b", "directory"], ["g.bin", "file"]]);
  assert.equal(l.entries[1]!.permissions, "0600");
  const back: Buffer[] = [];
  for await (const c of (await hf.files.downloadStream(m.id, "/sdk/a/g.bin")).unwrap()) back.push(c as Buffer);
  assert.ok(Buffer.concat(back).equals(data), "streamed round trip is byte-identical");
  const clash = await hf.files.rename(m.id, "/sdk/a/g.bin", "/sdk/a/b");
  assert.ok(!clash.ok && clash.error instanceof HyperfleetApiError && clash.error.status === 409, String(!clash.ok && clash.error));

  const tar = (await hf.files.downloadTar(m.id, "/sdk/a")).unwrap();
  const t = (await hf.files.uploadTar(m.id, "/sdk-copy", tar)).unwrap();
  assert.equal(t.files, 1);
  assert.equal(t.directories >= 2, true, JSON.stringify(t));
  const copy: Buffer[] = [];
  for await (const c of (await hf.files.downloadStream(m.id, "/sdk-copy/a/g.bin")).unwrap()) copy.push(c as Buffer);
  assert.ok(Buffer.concat(copy).equals(data), "tar round trip is byte-identical");
  const missing = await hf.files.downloadStream(m.id, "/sdk/none");
  assert.ok(!missing.ok && missing.error instanceof HyperfleetApiError && missing.error.code === "FILE_NOT_FOUND");
});

test("a 1 GiB download through the SDK keeps the daemon's RSS within +256 MiB", { skip: skip ?? false, timeout: 600_000 }, async (t) => {
  const mk = await m.exec({ command: ["sh", "-c", "dd if=/dev/zero of=/big bs=1 count=0 seek=1073741824"] });
  assert.equal(mk.body.exit_code, 0, JSON.stringify(mk.body));
  for await (const c of (await hf.files.downloadStream(m.id, "/etc/hostname")).unwrap()) void c;
  const before = memMib(m.d.pid);
  resetPeak(m.d.pid);
  const t0 = Date.now();
  const r = (await hf.files.downloadStream(m.id, "/big")).unwrap();
  const hash = createHash("sha256");
  let n = 0;
  let peak = 0;
  let next = 0;
  for await (const c of r) {
    hash.update(c as Buffer);
    n += (c as Buffer).length;
    if (n >= next) {
      peak = Math.max(peak, memMib(m.d.pid).peak);
      next += 64 * 1024 * 1024;
    }
  }
  const s = (Date.now() - t0) / 1000;
  peak = Math.max(peak, memMib(m.d.pid).peak);
  assert.equal(n, GIB);
  const z = createHash("sha256");
  const mib = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < 1024; i++) z.update(mib);
  assert.equal(hash.digest("hex"), z.digest("hex"));
  t.diagnostic(`1 GiB via SDK in ${s.toFixed(1)} s; daemon RSS ${before.rss.toFixed(0)} MiB before, peak ${peak.toFixed(0)} MiB; this process RSS ${(process.memoryUsage().rss / 1048576).toFixed(0)} MiB`);
  assert.ok(peak - before.rss < 256, `daemon peak RSS grew by ${(peak - before.rss).toFixed(0)} MiB (bound: 256)`);
  assert.ok(process.memoryUsage().rss < 512 * 1048576, "the client did not hold the file either");
});
