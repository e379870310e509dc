/**
 * The whole machine lifecycle through the HTTP API (app.inject(), no socket) against real VMs:
 * create -> start -> wait -> exec (command and cmd) -> files -> stop -> restart -> delete, the
 * 409/413/504 answers of a running machine, and a QEMU killed from outside reported as failed.
 * One VM at a time (a TCG boot costs ~0.55 CPU-s on a 2-core machine).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { statusHistory } from "../store-history.js";
import { json, startTestDaemon, until, vmSkipReason, type TestDaemon } from "./helpers.js";

const skip = vmSkipReason();
let t: TestDaemon;
let id = "";
const MAX = 1024 * 1024;

type Machine = { id: string; status: string; pid: number | null; last_error: { code: string; message: string } | null; started_at: string | null; stopped_at: string | null };
type Exec = { exit_code: number | null; signal: number | null; stdout: string; stderr: string; duration_ms: number };

before(async () => {
  if (skip) return;
  t = await startTestDaemon({ HYPERFLEET_FILE_MAX_SIZE: String(MAX) });
});
after(async () => {
  if (t) await t.close();
});

async function waitFor(status: string): Promise<Machine> {
  const r = await t.req("GET", `/machines/${id}/wait?status=${status}&timeout=30`);
  assert.equal(r.statusCode, 200, r.body);
  const m = json<Machine>(r);
  assert.equal(m.status, status);
  return m;
}

async function exec(body: Record<string, unknown>): Promise<Exec> {
  const r = await t.req("POST", `/machines/${id}/exec`, body);
  assert.equal(r.statusCode, 200, r.body);
  return json<Exec>(r);
}

test("create (with env) and start", { skip: skip ?? false }, async () => {
  const c = await t.req("POST", "/machines", { name: "lifecycle", vcpu_count: 1, mem_size_mib: 256, env: { GREETING: "hello" }, metadata: { suite: "api" } });
  assert.equal(c.statusCode, 201, c.body);
  id = json<Machine>(c).id;
  assert.equal(json<Machine>(c).status, "created");
  const s = await t.req("POST", `/machines/${id}/start`);
  assert.equal(s.statusCode, 202, s.body);
  assert.equal(json<Machine>(s).status, "starting");
  const m = await waitFor("running");
  assert.ok(m.pid && m.pid > 1);
  assert.ok(m.started_at);
  const listed = json<Machine[]>(await t.req("GET", "/machines?status=running"));
  assert.deepEqual(listed.map((x) => x.id), [id]);
  assert.deepEqual(json<Machine[]>(await t.req("GET", "/machines?status=stopped")), []);
});

test("start again is 409 with the current status", { skip: skip ?? false }, async () => {
  const r = await t.req("POST", `/machines/${id}/start`);
  assert.equal(r.statusCode, 409);
  assert.equal(json<{ error: { code: string; current_status: string } }>(r).error.current_status, "running");
});

test("exec with `command` and with `cmd`; env, cwd, stdin, exit codes", { skip: skip ?? false }, async () => {
  const a = await exec({ command: ["sh", "-c", 'echo "$GREETING $EXTRA from $(pwd)"; echo err >&2; exit 3'], env: { EXTRA: "world" }, cwd: "/tmp" });
  assert.equal(a.exit_code, 3);
  assert.equal(a.stdout, "hello world from /tmp\n");
  assert.equal(a.stderr, "err\n");
  assert.ok(a.duration_ms >= 0);
  const b = await exec({ cmd: ["uname", "-s"] });
  assert.equal(b.exit_code, 0);
  assert.equal(b.stdout, "Linux\n");
  const c = await exec({ command: ["cat"], stdin: "piped input" });
  assert.equal(c.stdout, "piped input");
  const same = await exec({ command: ["true"], cmd: ["true"] });
  assert.equal(same.exit_code, 0);
});

test("exec errors: unknown command 400, timeout 504 with partial output", { skip: skip ?? false }, async () => {
  const nf = await t.req("POST", `/machines/${id}/exec`, { command: ["/no/such/binary"] });
  assert.equal(nf.statusCode, 400, nf.body);
  assert.equal(json<{ error: { code: string } }>(nf).error.code, "EXEC_NOT_FOUND");
  const to = await t.req("POST", `/machines/${id}/exec`, { command: ["sh", "-c", "echo started; sleep 10"], timeout: 0.5 });
  assert.equal(to.statusCode, 504, to.body);
  const e = json<{ error: { code: string; stdout?: string } }>(to).error;
  assert.equal(e.code, "EXEC_TIMEOUT");
  assert.equal(e.stdout, "started\n");
});

test("files: upload, stat, download (JSON and raw, byte-identical), delete", { skip: skip ?? false }, async () => {
  const data = randomBytes(256 * 1024 + 7);
  const up = await t.req("POST", `/machines/${id}/files`, { path: "/tmp/up/blob.bin", content: data.toString("base64"), mode: "0640" });
  assert.equal(up.statusCode, 201, up.body);
  assert.deepEqual(json(up), { path: "/tmp/up/blob.bin", size: data.length });

  const st = await t.req("GET", `/machines/${id}/files/stat?path=/tmp/up/blob.bin`);
  assert.equal(st.statusCode, 200, st.body);
  const s = json<{ type: string; size: number; permissions: string; mtime: string }>(st);
  assert.equal(s.type, "file");
  assert.equal(s.size, data.length);
  assert.equal(s.permissions, "0640");
  assert.ok(!Number.isNaN(Date.parse(s.mtime)));

  const dj = await t.req("GET", `/machines/${id}/files?path=/tmp/up/blob.bin`);
  assert.equal(dj.statusCode, 200);
  assert.match(String(dj.headers["content-type"]), /application\/json/);
  const body = json<{ content: string; size: number }>(dj);
  assert.equal(body.size, data.length);
  assert.ok(Buffer.from(body.content, "base64").equals(data), "JSON download is byte-identical");

  const raw = await t.req("GET", `/machines/${id}/files?path=/tmp/up/blob.bin`, undefined, { accept: "application/octet-stream" });
  assert.equal(raw.statusCode, 200);
  assert.equal(raw.headers["content-type"], "application/octet-stream");
  assert.ok(raw.rawPayload.equals(data), "raw download is byte-identical");

  // The guest sees the same bytes.
  const sum = await exec({ command: ["sha256sum", "/tmp/up/blob.bin"] });
  const { createHash } = await import("node:crypto");
  assert.equal(sum.stdout.split(" ")[0], createHash("sha256").update(data).digest("hex"));

  const dir = await t.req("GET", `/machines/${id}/files?path=/tmp/up`);
  assert.equal(dir.statusCode, 400);
  assert.equal(json<{ error: { code: string } }>(dir).error.code, "FILE_IS_DIRECTORY");

  const del = await t.req("DELETE", `/machines/${id}/files?path=/tmp/up/blob.bin`);
  assert.equal(del.statusCode, 204, del.body);
  const gone = await t.req("GET", `/machines/${id}/files/stat?path=/tmp/up/blob.bin`);
  assert.equal(gone.statusCode, 404);
  assert.equal(json<{ error: { code: string } }>(gone).error.code, "FILE_NOT_FOUND");
  const rmdir = await t.req("DELETE", `/machines/${id}/files?path=/tmp/up&recursive=true`);
  assert.equal(rmdir.statusCode, 204, rmdir.body);
});

test("files: 413 over HYPERFLEET_FILE_MAX_SIZE, both ways", { skip: skip ?? false }, async () => {
  const up = await t.req("POST", `/machines/${id}/files`, { path: "/tmp/big", content: Buffer.alloc(MAX + 1).toString("base64") });
  assert.equal(up.statusCode, 413, up.body);
  assert.equal(json<{ error: { code: string } }>(up).error.code, "FILE_TOO_LARGE");
  await exec({ command: ["dd", "if=/dev/zero", "of=/tmp/big", "bs=1024", `count=${MAX / 1024 + 1}`] });
  const down = await t.req("GET", `/machines/${id}/files?path=/tmp/big`);
  assert.equal(down.statusCode, 413, down.body);
  assert.equal(json<{ error: { code: string } }>(down).error.code, "FILE_TOO_LARGE");
});

test("stop: 202 stopping, then stopped; exec is 409 MACHINE_NOT_RUNNING", { skip: skip ?? false }, async () => {
  const r = await t.req("POST", `/machines/${id}/stop`);
  assert.equal(r.statusCode, 202, r.body);
  assert.equal(json<Machine>(r).status, "stopping");
  const m = await waitFor("stopped");
  assert.equal(m.pid, null);
  assert.ok(m.stopped_at);
  const again = await t.req("POST", `/machines/${id}/stop`);
  assert.equal(again.statusCode, 409);
  const e = await t.req("POST", `/machines/${id}/exec`, { command: ["true"] });
  assert.equal(e.statusCode, 409);
  assert.equal(json<{ error: { code: string; current_status: string } }>(e).error.current_status, "stopped");
});

test("restart from stopped boots; restart from running stops then boots; disk survives", { skip: skip ?? false }, async () => {
  const r1 = await t.req("POST", `/machines/${id}/restart`);
  assert.equal(r1.statusCode, 202, r1.body);
  assert.equal(json<Machine>(r1).status, "starting");
  await waitFor("running");
  await exec({ command: ["sh", "-c", "echo kept > /root/marker && sync"] });
  const r2 = await t.req("POST", `/machines/${id}/restart`);
  assert.equal(r2.statusCode, 202, r2.body);
  assert.equal(json<Machine>(r2).status, "stopping");
  await waitFor("running");
  const marker = await exec({ command: ["cat", "/root/marker"] });
  assert.equal(marker.stdout, "kept\n", "the machine's own disk is kept across restarts");
  const history = statusHistory(join(t.dataDir, "hyperfleet.db"), id).map((e) => e.toStatus);
  assert.deepEqual(history, ["created", "starting", "running", "stopping", "stopped", "starting", "running", "stopping", "stopped", "starting", "running"]);
});

test("a QEMU killed from outside is reported failed with last_error", { skip: skip ?? false }, async () => {
  const m = json<Machine>(await t.req("GET", `/machines/${id}`));
  assert.ok(m.pid);
  process.kill(m.pid, "SIGKILL");
  const failed = await until(async () => {
    const cur = json<Machine>(await t.req("GET", `/machines/${id}`));
    return cur.status === "failed" ? cur : null;
  }, 10_000, "status failed");
  assert.equal(failed.last_error?.code, "VMM_EXITED");
  assert.equal(failed.pid, null);
  const e = await t.req("POST", `/machines/${id}/exec`, { command: ["true"] });
  assert.equal(e.statusCode, 409);
});

test("delete: 204, VM gone, 404 afterwards", { skip: skip ?? false }, async () => {
  const d = await t.req("DELETE", `/machines/${id}`);
  assert.equal(d.statusCode, 204, d.body);
  const g = await t.req("GET", `/machines/${id}`);
  assert.equal(g.statusCode, 404);
  assert.equal(json<{ error: { code: string } }>(g).error.code, "MACHINE_NOT_FOUND");
  assert.deepEqual(json(await t.req("GET", "/machines")), []);
});

test("create with start: true, then delete while running", { skip: skip ?? false }, async () => {
  const c = await t.req("POST", "/machines", { name: "quick", vcpu_count: 1, mem_size_mib: 256, start: true });
  assert.equal(c.statusCode, 201, c.body);
  id = json<Machine>(c).id;
  assert.equal(json<Machine>(c).status, "starting");
  const m = await waitFor("running");
  const d = await t.req("DELETE", `/machines/${id}`);
  assert.equal(d.statusCode, 204, d.body);
  await until(async () => {
    try {
      process.kill(m.pid!, 0);
      return false;
    } catch {
      return true;
    }
  }, 5_000, "the QEMU process to go");
});
