import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { writeCpio } from "../../src/assets/cpio.js";
import { hashTree, normalizeTree, type TreeEntry } from "../../src/assets/tree.js";
import { isHyperfleetError } from "../../src/core/errors.js";

const sample: TreeEntry[] = [
  { type: "file", path: "init", mode: 0o755, data: Buffer.from("#!hi\n") },
  { type: "chardev", path: "dev/console", mode: 0o600, major: 5, minor: 1 },
  { type: "symlink", path: "bin/sh", target: "/bin/busybox" },
];

/** Minimal newc reader, independent of the writer, to check the byte layout. */
function parseNewc(buf: Buffer): { name: string; mode: number; size: number; rdev: string; data: Buffer; ino: number }[] {
  const out = [];
  let p = 0;
  for (;;) {
    assert.equal(buf.toString("ascii", p, p + 6), "070701", `magic at ${p}`);
    const f = (i: number) => parseInt(buf.toString("ascii", p + 6 + i * 8, p + 14 + i * 8), 16);
    const namesize = f(11);
    const name = buf.toString("utf8", p + 110, p + 110 + namesize - 1);
    assert.equal(buf[p + 110 + namesize - 1], 0, "name is NUL-terminated");
    let q = p + 110 + namesize;
    q += (4 - (q % 4)) % 4;
    const size = f(6);
    out.push({ name, ino: f(0), mode: f(1), size, rdev: `${f(9)}:${f(10)}`, data: buf.subarray(q, q + size) });
    assert.equal(f(2), 0, "uid 0");
    assert.equal(f(5), 0, "mtime 0");
    q += size;
    q += (4 - (q % 4)) % 4;
    p = q;
    if (name === "TRAILER!!!") break;
  }
  assert.equal(p, buf.length, "nothing after the trailer");
  return out;
}

test("cpio: parents first, types, device numbers and 4-byte alignment", () => {
  const buf = writeCpio(sample);
  assert.equal(buf.length % 4, 0);
  const entries = parseNewc(buf);
  assert.deepEqual(
    entries.map((e) => [e.name, e.mode.toString(8)]),
    [
      ["bin", "40755"],
      ["bin/sh", "120777"],
      ["dev", "40755"],
      ["dev/console", "20600"],
      ["init", "100755"],
      ["TRAILER!!!", "0"],
    ],
  );
  assert.equal(entries[1]!.data.toString(), "/bin/busybox");
  assert.equal(entries[3]!.rdev, "5:1");
  assert.equal(entries[4]!.data.toString(), "#!hi\n");
  assert.deepEqual(entries.slice(0, -1).map((e) => e.ino), [1, 2, 3, 4, 5]);
});

test("cpio: golden bytes of a one-directory archive", () => {
  const hdr = (ino: string, mode: string, nlink: string, namesize: string) =>
    // ino mode uid gid nlink | mtime filesize devmajor devminor rdevmajor rdevminor | namesize check
    `070701${ino}${mode}${"0".repeat(16)}${nlink}${"0".repeat(48)}${namesize}00000000`;
  const expected =
    hdr("00000001", "000041ed", "00000002", "00000002") + "d\0" + // 110 + 2 = 112: already aligned
    hdr("00000000", "00000000", "00000001", "0000000b") + "TRAILER!!!\0" + "\0\0\0"; // 110 + 11 -> pad to 124
  assert.equal(writeCpio([{ type: "dir", path: "d", mode: 0o755 }]).toString("latin1"), expected);
});

test("cpio: output is reproducible and independent of entry order", () => {
  assert.deepEqual(writeCpio(sample), writeCpio([...sample].reverse()));
  assert.equal(hashTree(sample), hashTree([...sample].reverse()));
  assert.notEqual(hashTree(sample), hashTree(sample, "other-params"));
});

test("tree: bad paths, duplicates and files used as directories are rejected", () => {
  const bad = (entries: TreeEntry[]) => assert.throws(() => normalizeTree(entries), (e) => isHyperfleetError(e, "INVALID_ARGUMENT"));
  bad([{ type: "dir", path: "/abs", mode: 0o755 }]);
  bad([{ type: "dir", path: "a/../b", mode: 0o755 }]);
  bad([{ type: "dir", path: "", mode: 0o755 }]);
  bad([{ type: "dir", path: "a", mode: 0o755 }, { type: "dir", path: "a", mode: 0o700 }]);
  bad([{ type: "file", path: "a", mode: 0o644, data: Buffer.from("") }, { type: "dir", path: "a/b", mode: 0o755 }]);
});

const hasCpio = spawnSync("cpio", ["--version"]).status === 0;

test("cpio: GNU cpio lists what we wrote", { skip: hasCpio ? false : "GNU cpio is not installed" }, () => {
  const r = spawnSync("cpio", ["-itv", "--quiet"], { input: writeCpio(sample), encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split("\n");
  assert.equal(lines.length, 5);
  assert.match(lines[1]!, /^lrwxrwxrwx .* bin\/sh -> \/bin\/busybox$/);
  assert.match(lines[3]!, /^crw------- .* 5,\s+1 .* dev\/console$/);
  assert.match(lines[4]!, /^-rwxr-xr-x .* 5 .* init$/);
});
