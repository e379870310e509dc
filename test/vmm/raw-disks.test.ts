/**
 * Firecracker's per-VM raw disks (src/vmm/disks.ts `rawCopies`, src/vmm/disk-copy.ts) on the real
 * file system: a copy of a sparse base has the same bytes and about the same allocated blocks,
 * never the whole image written out.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createReadStream, existsSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { open } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { isHyperfleetError } from "../../src/core/errors.js";
import { copyDisk } from "../../src/vmm/disk-copy.js";
import { rawCopies } from "../../src/vmm/disks.js";

const dir = mkdtempSync(join(tmpdir(), "hf-rawdisk-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const MiB = 1024 * 1024;

/** A 256 MiB image with 3 MiB of data in three places (start, middle, end): a base rootfs in small. */
async function sparseBase(path: string): Promise<void> {
  const f = await open(path, "w");
  try {
    await f.truncate(256 * MiB);
    for (const [i, at] of [0, 100 * MiB, 255 * MiB].entries()) {
      const chunk = Buffer.alloc(MiB, i + 1);
      chunk.write(`block ${i}`, 17);
      await f.write(chunk, 0, MiB, at);
    }
    await f.sync();
  } finally {
    await f.close();
  }
}

function allocated(path: string): number {
  return statSync(path).blocks * 512;
}

async function sha256(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const c of createReadStream(path)) h.update(c as Buffer);
  return h.digest("hex");
}

test("rawCopies.rootDisk: the copy has the base's bytes and about its allocated size, not the whole image", async () => {
  const base = join(dir, "base.ext4");
  await sparseBase(base);
  const runDir = join(dir, "vm1");
  const disk = await rawCopies.rootDisk(base, runDir);
  assert.deepEqual(disk, { path: join(runDir, "rootfs.ext4"), format: "raw" });
  assert.equal(statSync(disk.path).size, statSync(base).size);
  assert.equal(await sha256(disk.path), await sha256(base));
  // A reflink allocates nothing new; a sparse copy the data (3 MiB). A full copy would be 256 MiB.
  const baseBytes = allocated(base);
  assert.ok(allocated(disk.path) <= baseBytes + MiB, `copy allocates ${allocated(disk.path)} bytes, the base ${baseBytes}`);
  // No temporary file is left next to it.
  assert.deepEqual(readdirSync(runDir), ["rootfs.ext4"]);
});

test("rawCopies.rootDisk keeps an existing disk (a machine keeps its disk across stop and start)", async () => {
  const base = join(dir, "base2.ext4");
  await sparseBase(base);
  const runDir = join(dir, "vm2");
  const disk = await rawCopies.rootDisk(base, runDir);
  const f = await open(disk.path, "r+");
  await f.write(Buffer.from("written by the guest"), 0, 20, 4096);
  await f.close();
  await rawCopies.rootDisk(base, runDir);
  const back = await open(disk.path, "r");
  const buf = Buffer.alloc(20);
  await back.read(buf, 0, 20, 4096);
  await back.close();
  assert.equal(buf.toString(), "written by the guest");
  await rawCopies.removeDisk(runDir);
  assert.equal(existsSync(disk.path), false);
});

test("rawCopies.cloneDisk copies a frozen disk the same cheap way", async () => {
  const frozen = join(dir, "frozen.ext4");
  await sparseBase(frozen);
  const runDir = join(dir, "clone1");
  const disk = await rawCopies.cloneDisk({ path: frozen, format: "raw" }, runDir);
  assert.equal(await sha256(disk.path), await sha256(frozen));
  assert.ok(allocated(disk.path) <= allocated(frozen) + MiB);
});

test("a missing base is GUEST_ASSETS_MISSING", async () => {
  await assert.rejects(rawCopies.rootDisk(join(dir, "nope.ext4"), join(dir, "vm3")), (e) => isHyperfleetError(e) && e.code === "GUEST_ASSETS_MISSING");
});

test("copyDisk says which method the file system gave, and replaces an old destination", async () => {
  const src = join(dir, "src.img");
  await sparseBase(src);
  const dst = join(dir, "dst.img");
  const f = await open(dst, "w");
  await f.write(Buffer.alloc(4096, 9));
  await f.close();
  const method = await copyDisk(src, dst);
  assert.ok(method === "reflink" || method === "sparse", `got ${method}`);
  assert.equal(await sha256(dst), await sha256(src));
});
