/**
 * Files as users expect, through the HTTP API of a daemon child process (real socket, real VM):
 * list, mkdir and rename; raw streamed upload and download of a 300 KB file; a directory tree
 * through tar both ways, byte-identical; uploads over HYPERFLEET_FILE_MAX_SIZE refused with 413
 * before the body is read (Content-Length) or as soon as it passes the limit (chunked); tar entries
 * that would land outside the destination refused.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AUTH, vmSkipReason } from "./helpers.js";
import { UNDECLARED_CODE } from "../../src/api/errors.js";
import { startChildMachine, type ChildMachine } from "./child-machine.js";
import { encodeHeader, END_OF_ARCHIVE, padding } from "../../src/machines/tar.js";

const skip = vmSkipReason();
const MAX = 2 * 1024 * 1024;
let m: ChildMachine;
const host = mkdtempSync(join(tmpdir(), "hf-file-tree-"));

before(async () => {
  if (skip) return;
  m = await startChildMachine({ HYPERFLEET_FILE_MAX_SIZE: String(MAX) });
});
after(async () => {
  const undeclared = m ? m.d.output().split("\n").filter((l) => l.includes(UNDECLARED_CODE)) : [];
  if (m) await m.close();
  rmSync(host, { recursive: true, force: true });
  // Every error these routes answered is one they document (src/api/route-errors.ts).
  assert.deepEqual(undeclared, []);
});

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const url = (p: string) => `${m.d.url}/machines/${m.id}${p}`;

async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown>; raw: Buffer }> {
  const json = body !== undefined && !Buffer.isBuffer(body);
  const res = await fetch(url(path), {
    method,
    headers: { ...AUTH, ...(json && { "content-type": "application/json" }), ...headers },
    ...(body !== undefined && { body: json ? JSON.stringify(body) : (body as Buffer) }),
  });
  const raw = Buffer.from(await res.arrayBuffer());
  let parsed: Record<string, unknown> = {};
  if ((res.headers.get("content-type") ?? "").includes("json") && raw.length) parsed = JSON.parse(raw.toString()) as Record<string, unknown>;
  return { status: res.status, body: parsed, raw };
}

async function sh(cmd: string): Promise<string> {
  const r = await m.exec({ command: ["sh", "-c", cmd] });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.exit_code, 0, JSON.stringify(r.body));
  return r.body.stdout as string;
}

const errCode = (r: { body: Record<string, unknown> }) => (r.body.error as { code?: string } | undefined)?.code;

test("list, mkdir and rename", { skip: skip ?? false }, async () => {
  let r = await call("POST", "/files/mkdir", { path: "/t1/a/b", mode: "0750" });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  // mkdir -p of an existing directory is fine; without parents it is 409.
  assert.equal((await call("POST", "/files/mkdir", { path: "/t1/a/b" })).status, 201);
  r = await call("POST", "/files/mkdir", { path: "/t1/a/b", parents: false });
  assert.equal(r.status, 409);
  assert.equal(errCode(r), "FILE_ALREADY_EXISTS");
  await sh("printf hello > /t1/a/f.txt && ln -s /etc/passwd /t1/a/ln");

  r = await call("GET", `/files/list?path=${encodeURIComponent("/t1/a")}`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const entries = r.body.entries as Array<Record<string, unknown>>;
  assert.deepEqual(entries.map((e) => e.name), ["b", "f.txt", "ln"]);
  const [b, f, ln] = entries;
  assert.equal(b!.type, "directory");
  assert.equal(b!.permissions, "0750");
  assert.equal(f!.type, "file");
  assert.equal(f!.size, 5);
  assert.equal(f!.permissions, "0644");
  assert.ok(Math.abs(Date.parse(f!.mtime as string) - Date.now()) < 120_000, `mtime ${String(f!.mtime)}`);
  assert.equal(ln!.type, "symlink");
  assert.equal(ln!.target, "/etc/passwd");
  assert.equal(r.body.truncated, false);
  r = await call("GET", `/files/list?path=${encodeURIComponent("/t1/a")}&limit=2`);
  assert.equal((r.body.entries as unknown[]).length, 2);
  assert.equal(r.body.truncated, true);

  r = await call("POST", "/files/rename", { from: "/t1/a/f.txt", to: "/t1/a/b/g.txt" });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(await sh("cat /t1/a/b/g.txt"), "hello");
  await sh("printf other > /t1/a/h.txt");
  r = await call("POST", "/files/rename", { from: "/t1/a/h.txt", to: "/t1/a/b/g.txt" });
  assert.equal(r.status, 409);
  assert.equal(errCode(r), "FILE_ALREADY_EXISTS");
  assert.equal((await call("POST", "/files/rename", { from: "/t1/a/h.txt", to: "/t1/a/b/g.txt", overwrite: true })).status, 200);
  assert.equal(await sh("cat /t1/a/b/g.txt"), "other");

  r = await call("GET", `/files/list?path=${encodeURIComponent("/t1/nope")}`);
  assert.equal(r.status, 404);
  assert.equal(errCode(r), "FILE_NOT_FOUND");
  r = await call("POST", "/files/rename", { from: "/t1/nope", to: "/t1/x" });
  assert.equal(r.status, 404);
  r = await call("GET", `/files/list?path=relative`);
  assert.equal(r.status, 400);
});

test("a 300 KB file: raw streamed upload and download, byte-identical; the JSON endpoints agree", { skip: skip ?? false }, async () => {
  const data = randomBytes(300 * 1024);
  let r = await call("PUT", `/files?path=${encodeURIComponent("/raw/in/x.bin")}&mode=0600`, data, { "content-type": "application/octet-stream" });
  assert.equal(r.status, 201, r.raw.toString());
  assert.equal(r.body.size, data.length);
  r = await call("GET", `/files?path=${encodeURIComponent("/raw/in/x.bin")}`, undefined, { accept: "application/octet-stream" });
  assert.equal(r.status, 200);
  assert.equal(sha256(r.raw), sha256(data));
  r = await call("GET", `/files?path=${encodeURIComponent("/raw/in/x.bin")}`);
  assert.equal(sha256(Buffer.from(r.body.content as string, "base64")), sha256(data));
  r = await call("GET", `/files/stat?path=${encodeURIComponent("/raw/in/x.bin")}`);
  assert.equal(r.body.permissions, "0600");
  // A body without Content-Type (curl -T) is raw bytes too; JSON is refused with a clear code.
  r = await call("PUT", `/files?path=${encodeURIComponent("/raw/in/y.bin")}`, data.subarray(0, 10));
  assert.equal(r.status, 201, r.raw.toString());
  r = await call("PUT", `/files?path=${encodeURIComponent("/raw/in/z.bin")}`, { content: "x" });
  assert.equal(r.status, 415);
  assert.equal(errCode(r), "UNSUPPORTED_MEDIA_TYPE");
  r = await call("GET", `/files?path=${encodeURIComponent("/raw/in")}`, undefined, { accept: "application/octet-stream" });
  assert.equal(r.status, 400);
  assert.equal(errCode(r), "FILE_IS_DIRECTORY");
});

/** A tree on the host: nested dirs, an empty dir, a long name, binary files, modes. */
function hostTree(root: string): void {
  mkdirSync(join(root, "sub/deeper"), { recursive: true });
  mkdirSync(join(root, "empty"));
  writeFileSync(join(root, "top.bin"), randomBytes(300 * 1024));
  writeFileSync(join(root, "sub/small.txt"), "small\n");
  writeFileSync(join(root, "sub/deeper", "n".repeat(150)), randomBytes(5000));
  writeFileSync(join(root, "sub/zero"), "");
  execFileSync("chmod", ["0751", join(root, "sub/small.txt")]);
}

function hostFiles(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string, rel: string) => {
    for (const n of readdirSync(d).sort()) {
      const p = join(d, n);
      const st = statSync(p);
      if (st.isDirectory()) {
        out.set(`${rel}${n}/`, (st.mode & 0o7777).toString(8));
        walk(p, `${rel}${n}/`);
      } else out.set(`${rel}${n}`, `${(st.mode & 0o7777).toString(8)} ${sha256(readFileSync(p))}`);
    }
  };
  walk(root, "");
  return out;
}

test("a directory round-trips byte-identical through tar both ways", { skip: skip ?? false }, async () => {
  const src = join(host, "src");
  hostTree(src);
  const tarIn = execFileSync("tar", ["--format=gnu", "-cf", "-", "-C", host, "src"], { maxBuffer: 1 << 26 });
  let r = await call("PUT", `/files?path=${encodeURIComponent("/up")}&format=tar`, tarIn, { "content-type": "application/x-tar" });
  assert.equal(r.status, 200, r.raw.toString());
  assert.deepEqual({ files: r.body.files, directories: r.body.directories, symlinks: r.body.symlinks, skipped: r.body.skipped }, { files: 4, directories: 4, symlinks: 0, skipped: 0 });
  await sh("ln -s ../top.bin /up/src/sub/link");

  r = await call("GET", `/files?path=${encodeURIComponent("/up/src")}&format=tar`);
  assert.equal(r.status, 200, r.raw.toString().slice(0, 300));
  const back = join(host, "back");
  mkdirSync(back);
  writeFileSync(join(host, "back.tar"), r.raw);
  execFileSync("tar", ["-xf", join(host, "back.tar"), "-C", back]);
  const listing = execFileSync("tar", ["-tvf", join(host, "back.tar")]).toString();
  assert.match(listing, /src\/sub\/link -> \.\.\/top\.bin/);
  rmSync(join(back, "src/sub/link"));
  assert.deepEqual(hostFiles(join(back, "src")), hostFiles(src));

  // And back in: the archive we produced unpacks into another directory, symlink included.
  r = await call("PUT", `/files?path=${encodeURIComponent("/again")}&format=tar`, r.raw, { "content-type": "application/x-tar" });
  assert.equal(r.status, 200, r.raw.toString());
  assert.deepEqual({ symlinks: r.body.symlinks, skipped: r.body.skipped }, { symlinks: 1, skipped: 0 });
  assert.equal(await sh("readlink /again/src/sub/link"), "../top.bin\n");
  const sums = await sh("cd /again/src && find . -type f | sort | xargs sha256sum");
  const want = [...hostFiles(src)].filter(([k]) => !k.endsWith("/")).map(([k, v]) => `${v.split(" ")[1]}  ./${k}`).join("\n");
  assert.equal(sums.trim(), want);
});

test("tar entries outside the destination (../x, absolute, through a symlink) are refused, nothing lands outside", { skip: skip ?? false }, async () => {
  const base = { mode: 0o644, uid: 0, gid: 0, mtime: new Date() };
  for (const bad of ["../escape1", "/escape2", "ok/../../escape3"]) {
    const tar = Buffer.concat([
      encodeHeader({ ...base, name: "fine.txt", type: "file", size: 2 }),
      Buffer.from("ok"),
      padding(2),
      encodeHeader({ ...base, name: bad, type: "file", size: 3 }),
      Buffer.from("bad"),
      padding(3),
      END_OF_ARCHIVE,
    ]);
    const r = await call("PUT", `/files?path=${encodeURIComponent("/jail/inner")}&format=tar`, tar, { "content-type": "application/x-tar" });
    assert.equal(r.status, 400, r.raw.toString());
    assert.equal(errCode(r), "FILE_PATH_INVALID");
  }
  assert.equal(await sh("ls /jail/inner"), "fine.txt\n");
  assert.equal(await sh("ls / /jail | grep -c escape || true"), "0\n");
  // A symlink out of the destination, then a file "through" it: the file lands inside (symlinks are
  // created last), and the symlink over that directory is refused.
  await sh("mkdir -p /outside");
  const viaLink = (extra: Buffer[]) => Buffer.concat([encodeHeader({ ...base, name: "ln", type: "symlink", size: 0, linkname: "/outside" }), ...extra, END_OF_ARCHIVE]);
  let r2 = await call("PUT", `/files?path=${encodeURIComponent("/jail2")}&format=tar`, viaLink([encodeHeader({ ...base, name: "ln/owned", type: "file", size: 1 }), Buffer.from("x"), padding(1)]), { "content-type": "application/x-tar" });
  assert.equal(r2.status, 400, r2.raw.toString());
  assert.equal(errCode(r2), "FILE_PATH_INVALID");
  assert.equal(await sh("ls -A /outside | wc -l; ls /jail2/ln"), "0\nowned\n");
  // A symlink below another symlink of the archive.
  r2 = await call("PUT", `/files?path=${encodeURIComponent("/jail3")}&format=tar`, viaLink([encodeHeader({ ...base, name: "ln/deeper", type: "symlink", size: 0, linkname: "x" })]), { "content-type": "application/x-tar" });
  assert.equal(r2.status, 400, r2.raw.toString());
  assert.equal(errCode(r2), "FILE_PATH_INVALID");
  assert.equal(await sh("ls -A /outside | wc -l; readlink /jail3/ln"), "0\n/outside\n");
  // Not a tar at all.
  const r = await call("PUT", `/files?path=${encodeURIComponent("/jail/x")}&format=tar`, randomBytes(2048), { "content-type": "application/x-tar" });
  assert.equal(r.status, 400);
  assert.equal(errCode(r), "INVALID_ARGUMENT");
});

/** Sends only headers (no body) over a raw socket; resolves with the status line and body of the answer. */
function headersOnly(path: string, headers: Record<string, string>): Promise<string> {
  const u = new URL(url(path));
  return new Promise((resolve, reject) => {
    const s = connect(Number(u.port), u.hostname);
    let got = "";
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no answer before the body was sent; got ${JSON.stringify(got)}`));
    }, 10_000);
    s.on("data", (d) => {
      got += d.toString();
      if (got.includes("\r\n\r\n") && /}\s*$/.test(got)) {
        clearTimeout(timer);
        s.destroy();
        resolve(got);
      }
    });
    s.on("error", reject);
    const lines = Object.entries({ host: u.host, authorization: AUTH.authorization, ...headers }).map(([k, v]) => `${k}: ${v}`);
    s.write(`PUT ${u.pathname}${u.search} HTTP/1.1\r\n${lines.join("\r\n")}\r\n\r\n`);
  });
}

test("an upload over HYPERFLEET_FILE_MAX_SIZE is 413 before its body is read, or as soon as a chunked body passes it", { skip: skip ?? false }, async () => {
  for (const q of ["", "&format=tar"]) {
    const answer = await headersOnly(`/files?path=${encodeURIComponent("/big/declared")}${q}`, { "content-type": "application/octet-stream", "content-length": String(MAX + 1) });
    assert.match(answer, /^HTTP\/1\.1 413 /);
    assert.match(answer, /"code":"FILE_TOO_LARGE"/);
  }
  // Chunked: no Content-Length; refused once MAX bytes have passed, and no file is left behind.
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(c) {
      if (sent > 3 * MAX) return c.close();
      sent += 256 * 1024;
      c.enqueue(randomBytes(256 * 1024));
    },
  });
  const res = await fetch(url(`/files?path=${encodeURIComponent("/big/chunked")}`), {
    method: "PUT",
    headers: { ...AUTH, "content-type": "application/octet-stream" },
    body,
    duplex: "half",
  } as RequestInit).catch((e: unknown) => e);
  if (res instanceof Response) {
    assert.equal(res.status, 413);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, "FILE_TOO_LARGE");
  } else {
    // The daemon may answer and close while the body is still going: the client then sees a reset.
    assert.ok(res instanceof Error, String(res));
  }
  assert.equal(await sh("ls -A /big 2>/dev/null | wc -l"), "0\n");
  // Exactly the limit is fine.
  const r = await call("PUT", `/files?path=${encodeURIComponent("/big/exact")}`, randomBytes(MAX), { "content-type": "application/octet-stream" });
  assert.equal(r.status, 201, r.raw.toString());
});
