/**
 * File requests the client got wrong, against a real VM: every one is a 4xx with a stable code,
 * never 500 FILE_OPERATION_FAILED, and `/` is refused before anything reaches the guest (a
 * recursive delete of it used to wipe the guest's root and then answer 500).
 * One VM for the whole file (a TCG boot costs ~0.55 CPU-s on a shared 2-core machine).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { ERROR_CODES } from "../../src/core/errors.js";
import { json, startTestDaemon, vmSkipReason, type TestDaemon } from "./helpers.js";

const skip = vmSkipReason() ?? false;
let t: TestDaemon;
let id = "";

type ErrorJson = { error: { code: string; message: string; field?: string } };

before(async () => {
  if (skip) return;
  t = await startTestDaemon();
  const c = await t.req("POST", "/machines", { name: "file-errors", vcpu_count: 1, mem_size_mib: 256, start: true });
  assert.equal(c.statusCode, 201, c.body);
  id = json<{ id: string }>(c).id;
  const w = await t.req("GET", `/machines/${id}/wait?status=running&timeout=30`);
  assert.equal(w.statusCode, 200, w.body);
});
after(async () => {
  if (t) await t.close();
});

function expectError(r: { statusCode: number; body: string }, status: number, code: string, field?: string): ErrorJson {
  assert.equal(r.statusCode, status, r.body);
  const b = JSON.parse(r.body) as ErrorJson;
  assert.equal(b.error.code, code, r.body);
  assert.ok(b.error.code in ERROR_CODES);
  if (field !== undefined) assert.equal(b.error.field, field, r.body);
  return b;
}

const q = (path: string) => encodeURIComponent(path);
const upload = (path: string, content = "aGk=") => t.req("POST", `/machines/${id}/files`, { path, content });
const del = (path: string, recursive = false) => t.req("DELETE", `/machines/${id}/files?path=${q(path)}${recursive ? "&recursive=true" : ""}`);
const stat = (path: string) => t.req("GET", `/machines/${id}/files/stat?path=${q(path)}`);

async function sh(script: string): Promise<void> {
  const r = await t.req("POST", `/machines/${id}/exec`, { command: ["/bin/sh", "-c", script] });
  assert.equal(r.statusCode, 200, r.body);
  assert.equal(json<{ exit_code: number }>(r).exit_code, 0, r.body);
}

test("a path component over 255 bytes is 400 on field path, for every file route", { skip }, async () => {
  const long = `/tmp/${"a".repeat(256)}`;
  // 200 characters, 400 bytes: the limit is the kernel's, in bytes.
  const wide = `/tmp/${"é".repeat(200)}`;
  const deep = `/tmp${"/abcdefgh".repeat(455)}`; // 4099 bytes, every component short
  for (const p of [long, wide, deep]) {
    expectError(await upload(p), 400, "INVALID_ARGUMENT", "path");
    expectError(await stat(p), 400, "INVALID_ARGUMENT", "path");
    expectError(await t.req("GET", `/machines/${id}/files?path=${q(p)}`), 400, "INVALID_ARGUMENT", "path");
    expectError(await del(p), 400, "INVALID_ARGUMENT", "path");
  }
  // 255 bytes is allowed (and simply not there).
  expectError(await stat(`/tmp/${"a".repeat(255)}`), 404, "FILE_NOT_FOUND");
});

test("uploading to / or to a directory spelling is 400, not 500", { skip }, async () => {
  for (const p of ["/", "//", "/tmp/", "/tmp/.", "/tmp/.."]) expectError(await upload(p), 400, "INVALID_ARGUMENT", "path");
});

test("deleting / is refused before it reaches the guest, and / is intact afterwards", { skip }, async () => {
  const canary = await upload("/canary.txt");
  assert.equal(canary.statusCode, 201, canary.body);
  for (const p of ["/", "//", "/tmp/..", "/./", "/tmp/../etc"]) {
    expectError(await del(p, true), 400, "INVALID_ARGUMENT", "path");
    expectError(await del(p), 400, "INVALID_ARGUMENT", "path");
  }
  // A symlink to / with a trailing slash: the guest would follow it; the daemon sends `/tmp/root`.
  await sh("ln -sfn / /tmp/root");
  const r = await del("/tmp/root/", true);
  assert.equal(r.statusCode, 204, r.body);
  for (const p of ["/", "/canary.txt", "/etc/passwd", "/bin/sh"]) {
    const s = await stat(p);
    assert.equal(s.statusCode, 200, `${p} must survive: ${s.body}`);
  }
  expectError(await stat("/tmp/root"), 404, "FILE_NOT_FOUND");
});

test("deleting a mount point (/tmp, /proc) is 409 FILE_BUSY", { skip }, async () => {
  for (const p of ["/tmp", "/proc"]) {
    const e = expectError(await del(p), 409, "FILE_BUSY");
    assert.match(e.error.message, /mount point/);
  }
  // Still there.
  assert.equal((await stat("/proc/self")).statusCode, 200);
});

test("a non-recursive delete of a non-empty directory is 409 FILE_NOT_EMPTY; recursive works", { skip }, async () => {
  assert.equal((await upload("/tmp/full/x.txt")).statusCode, 201);
  const e = expectError(await del("/tmp/full"), 409, "FILE_NOT_EMPTY");
  assert.match(e.error.message, /recursive=true/);
  assert.equal((await del("/tmp/full", true)).statusCode, 204);
  expectError(await stat("/tmp/full"), 404, "FILE_NOT_FOUND");
});

test("a symlink loop is 400 FILE_PATH_INVALID", { skip }, async () => {
  await sh("mkdir -p /tmp/loop && ln -sfn b /tmp/loop/a && ln -sfn a /tmp/loop/b");
  expectError(await stat("/tmp/loop/a/x"), 400, "FILE_PATH_INVALID");
  expectError(await upload("/tmp/loop/a/x"), 400, "FILE_PATH_INVALID");
});

test("a full guest disk is 409 FILE_NO_SPACE", { skip }, async () => {
  await sh("mkdir -p /tmp/small && mount -t tmpfs -o size=64k tmpfs /tmp/small");
  try {
    const big = Buffer.alloc(256 * 1024, 1).toString("base64");
    const e = expectError(await upload("/tmp/small/big.bin", big), 409, "FILE_NO_SPACE");
    assert.match(e.error.message, /disk is full/);
  } finally {
    await sh("umount /tmp/small");
  }
});

test("a read-only filesystem is 400 FILE_READ_ONLY", { skip }, async () => {
  await sh("mkdir -p /tmp/ro && mount -t tmpfs -o ro,size=64k tmpfs /tmp/ro");
  try {
    expectError(await upload("/tmp/ro/x.txt"), 400, "FILE_READ_ONLY");
  } finally {
    await sh("umount /tmp/ro");
  }
});
