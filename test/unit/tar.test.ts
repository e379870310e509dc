/**
 * The ustar codec (src/machines/tar.ts) against GNU tar: what we write, tar lists and extracts
 * byte-identical; what GNU tar writes (long names, symlinks, PAX), we read back.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeHeader, END_OF_ARCHIVE, padding, readTar, type TarHeader } from "../../src/machines/tar.js";
import { isHyperfleetError } from "../../src/core/errors.js";
import { safeRelative } from "../../src/machines/file-streams.js";

const tmp = mkdtempSync(join(tmpdir(), "hf-tar-test-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

async function* chunked(b: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let o = 0; o < b.length; o += size) yield b.subarray(o, o + size);
}

async function readAll(b: Buffer, chunk = 1000): Promise<Array<{ header: TarHeader; data: Buffer }>> {
  const out: Array<{ header: TarHeader; data: Buffer }> = [];
  for await (const e of readTar(chunked(b, chunk))) {
    const parts: Buffer[] = [];
    for await (const c of e.body) parts.push(c);
    out.push({ header: e.header, data: Buffer.concat(parts) });
  }
  return out;
}

const longName = `d/${"x".repeat(120)}/${"é".repeat(60)}.bin`;
const base = { mode: 0o644, uid: 1000, gid: 1000, mtime: new Date(1_700_000_000_000) };

function archive(): { tar: Buffer; data: Buffer } {
  const data = randomBytes(300 * 1024 + 7);
  const parts = [
    encodeHeader({ ...base, name: "d", type: "directory", mode: 0o755, size: 0 }),
    encodeHeader({ ...base, name: "d/a.bin", type: "file", size: data.length }),
    data,
    padding(data.length),
    encodeHeader({ ...base, name: longName, type: "file", size: 3 }),
    Buffer.from("abc"),
    padding(3),
    encodeHeader({ ...base, name: "d/link", type: "symlink", size: 0, linkname: "/".repeat(1) + "t".repeat(150) }),
    END_OF_ARCHIVE,
  ];
  return { tar: Buffer.concat(parts), data };
}

test("GNU tar extracts what we write byte-identical (long names and targets through PAX)", () => {
  const { tar, data } = archive();
  const file = join(tmp, "ours.tar");
  writeFileSync(file, tar);
  const out = join(tmp, "x1");
  mkdirSync(out);
  execFileSync("tar", ["-xf", file, "-C", out]);
  assert.deepEqual(readFileSync(join(out, "d/a.bin")), data);
  assert.equal(readFileSync(join(out, longName), "utf8"), "abc");
  assert.equal(readlinkSync(join(out, "d/link")), "/" + "t".repeat(150));
});

test("we read back what we write, in any chunking", async () => {
  const { tar, data } = archive();
  for (const chunk of [1, 511, 512, 4096, tar.length]) {
    const got = await readAll(tar, chunk);
    assert.deepEqual(got.map((e) => [e.header.name, e.header.type]), [["d", "directory"], ["d/a.bin", "file"], [longName, "file"], ["d/link", "symlink"]]);
    assert.deepEqual(got[1]!.data, data);
    assert.equal(got[1]!.header.mode, 0o644);
    assert.equal(got[1]!.header.mtime.getTime(), 1_700_000_000_000);
    assert.equal(got[3]!.header.linkname, "/" + "t".repeat(150));
  }
});

test("we read what GNU tar writes (gnu and posix formats), skipping bodies we do not consume", async () => {
  const src = join(tmp, "src");
  mkdirSync(join(src, "sub", "y".repeat(110)), { recursive: true });
  const data = randomBytes(70_000);
  writeFileSync(join(src, "sub", "y".repeat(110), "f"), data);
  writeFileSync(join(src, "small"), "s");
  symlinkSync("../elsewhere", join(src, "ln"));
  for (const format of ["gnu", "posix"]) {
    const tar = execFileSync("tar", [`--format=${format}`, "-cf", "-", "-C", tmp, "src"], { maxBuffer: 1 << 24 });
    const seen = new Map<string, { type: string; data?: Buffer; link?: string }>();
    for await (const e of readTar(chunked(tar, 777))) {
      if (e.header.name.endsWith("/small")) {
        seen.set(e.header.name, { type: e.header.type }); // body left unread: must be skipped
        continue;
      }
      const parts: Buffer[] = [];
      for await (const c of e.body) parts.push(c);
      seen.set(e.header.name, { type: e.header.type, data: Buffer.concat(parts), ...(e.header.linkname !== undefined && { link: e.header.linkname }) });
    }
    assert.deepEqual(seen.get(`src/sub/${"y".repeat(110)}/f`)?.data, data, format);
    assert.equal(seen.get(`src/sub/${"y".repeat(110)}`)?.type, "directory", format);
    assert.equal(seen.get("src/ln")?.link, "../elsewhere", format);
    assert.equal(seen.get("src/small")?.type, "file", format);
  }
});

test("a truncated archive, a bad checksum and a missing end are INVALID_ARGUMENT", async () => {
  const { tar } = archive();
  const bad = Buffer.from(tar);
  bad[0] = bad[0]! ^ 1;
  for (const b of [tar.subarray(0, 2000), bad, tar.subarray(0, tar.length - 1024)]) {
    await assert.rejects(readAll(b), (e: unknown) => isHyperfleetError(e, "INVALID_ARGUMENT"));
  }
});

test("safeRelative: absolute, '..' and NUL are refused; '.' and empty components dropped", () => {
  assert.equal(safeRelative("./a//b/./c/"), "a/b/c");
  assert.equal(safeRelative("."), "");
  assert.equal(safeRelative("a..b/..c"), "a..b/..c");
  for (const bad of ["/etc/passwd", "../x", "a/../../x", "a/..", "a\0b"]) {
    assert.throws(() => safeRelative(bad), (e: unknown) => isHyperfleetError(e, "FILE_PATH_INVALID"), bad);
  }
});
