import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { extractVmlinux, locatePayload } from "../../src/assets/bzimage.js";
import { inspectElf } from "../../src/assets/elf.js";
import { decodeLz4Legacy } from "../../src/assets/lz4.js";

const MAGIC = [0x02, 0x21, 0x4c, 0x18];
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};
/** A legacy frame from raw LZ4 blocks. */
const frame = (...blocks: number[][]) => Buffer.concat([Buffer.from(MAGIC), ...blocks.map((b) => Buffer.concat([u32(b.length), Buffer.from(b)]))]);

test("lz4: literals, an overlapping match and a long match length", () => {
  // token 0x3f: 3 literals "abc", match len 15+1+4=20 at offset 3 (overlapping), then a final 2-literal sequence
  const block = [0x3f, 0x61, 0x62, 0x63, 0x03, 0x00, 0x01, 0x20, 0x78, 0x79];
  assert.equal(decodeLz4Legacy(frame(block)).toString(), "abc".repeat(7) + "ab" + "xy");
  assert.equal(decodeLz4Legacy(frame([0x10, 0x41], [0x10, 0x42])).toString(), "AB", "blocks are independent and concatenated");
});

test("lz4: corrupt input is an error, not garbage", () => {
  assert.throws(() => decodeLz4Legacy(Buffer.from([1, 2, 3, 4])), /magic/);
  assert.throws(() => decodeLz4Legacy(frame([0x1f, 0x61, 0x09, 0x00])), /offset/);
  assert.throws(() => decodeLz4Legacy(Buffer.concat([frame([0x10, 0x41]), u32(100)])), /past the end/);
  assert.throws(() => decodeLz4Legacy(frame([0x10, 0x41]), 2), /expected 2/);
});

const hasLz4 = spawnSync("lz4", ["--version"]).status === 0;

test("lz4: decodes what the lz4 CLI writes in legacy format", { skip: hasLz4 ? false : "lz4 CLI is not installed" }, () => {
  // Compressible and incompressible parts, larger than one 8 MiB legacy block.
  const input = Buffer.concat([Buffer.alloc(9 << 20, "hyperfleet "), randomBytes(300_000), Buffer.alloc(1000, 7)]);
  const r = spawnSync("lz4", ["-l", "-c", "-q"], { input, maxBuffer: 64 << 20 });
  assert.equal(r.status, 0, r.stderr?.toString());
  assert.ok(decodeLz4Legacy(r.stdout, input.length).equals(input));
});

/** A minimal ELF64 x86-64 header with one PT_NOTE holding the Xen PHYS32_ENTRY note. */
function fakeVmlinux(withPvh: boolean): Buffer {
  const elf = Buffer.alloc(0x100);
  elf.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  elf.writeUInt16LE(2, 0x10); // ET_EXEC
  elf.writeUInt16LE(62, 0x12); // EM_X86_64
  elf.writeBigUInt64LE(0x40n, 0x20); // e_phoff
  elf.writeUInt16LE(56, 0x36);
  elf.writeUInt16LE(1, 0x38);
  elf.writeUInt32LE(4, 0x40); // PT_NOTE
  elf.writeBigUInt64LE(0x80n, 0x48); // p_offset
  elf.writeBigUInt64LE(20n, 0x60); // p_filesz
  elf.writeUInt32LE(4, 0x80); // namesz "Xen\0"
  elf.writeUInt32LE(4, 0x84); // descsz
  elf.writeUInt32LE(withPvh ? 18 : 17, 0x88);
  elf.write("Xen\0", 0x8c, "latin1");
  return elf;
}

/** A bzImage-shaped file: setup header fields + LZ4 payload + trailing size. */
function fakeBzImage(vmlinux: Buffer): Buffer {
  // Store the vmlinux as one literal-only block (token 0xf0 + length bytes).
  let n = vmlinux.length - 15;
  const len: number[] = [];
  for (; n >= 255; n -= 255) len.push(255);
  len.push(n);
  const payload = Buffer.concat([frame([0xf0, ...len, ...vmlinux]), u32(vmlinux.length)]);
  const img = Buffer.alloc(0x400);
  img[0x1f1] = 1; // setup_sects: payload base = 2 * 512
  img.write("HdrS", 0x202, "latin1");
  img.writeUInt16LE(0x20f, 0x206);
  img.writeUInt32LE(0, 0x248);
  img.writeUInt32LE(payload.length, 0x24c);
  return Buffer.concat([img, payload, Buffer.alloc(64, 0xcc)]); // trailing code after the payload
}

test("elf: static, machine and PVH note", () => {
  assert.deepEqual(inspectElf(fakeVmlinux(true)), { x86_64: true, type: 2, isStatic: true, hasPvhNote: true });
  assert.equal(inspectElf(fakeVmlinux(false))?.hasPvhNote, false);
  assert.equal(inspectElf(Buffer.from("not an elf at all, just some text here to pass the length check..........")), null);
  // Node itself is dynamically linked.
  assert.equal(inspectElf(readFileSync(process.execPath))?.isStatic, false);
});

test("bzImage: payload located via the setup header, vmlinux extracted", () => {
  const vmlinux = fakeVmlinux(true);
  const img = fakeBzImage(vmlinux);
  const p = locatePayload(img);
  assert.equal(p.offset, 1024);
  assert.equal(p.uncompressedSize, vmlinux.length);
  const out = extractVmlinux(img);
  assert.ok(out.vmlinux.equals(vmlinux));
  assert.equal(out.hasPvhNote, true);
  assert.throws(() => extractVmlinux(Buffer.alloc(0x400)), /HdrS/);
});
