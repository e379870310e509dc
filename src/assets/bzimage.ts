/**
 * Extracts the ELF vmlinux from an x86 bzImage. The setup header (boot protocol >= 2.08) says
 * where the compressed payload is; its last 4 bytes hold the decompressed size. Debian's kernels
 * use LZ4, which lz4.ts decodes. The result is what Firecracker needs and what QEMU boots fastest
 * (PVH entry, no real-mode setup and no in-guest decompression).
 */
import { HyperfleetError } from "../core/errors.js";
import { inspectElf } from "./elf.js";
import { decodeLz4Legacy, LZ4_LEGACY_MAGIC } from "./lz4.js";

/** Where the compressed kernel lies inside a bzImage. */
export interface BzImagePayload {
  offset: number;
  length: number;
  /** Size after decompression, from the payload's trailing u32. */
  uncompressedSize: number;
}

function bad(message: string): HyperfleetError {
  return new HyperfleetError("INTERNAL", `not a usable bzImage: ${message}`);
}

/** Reads the setup header. Throws if the file is not a bzImage with payload fields. */
export function locatePayload(img: Uint8Array): BzImagePayload {
  if (img.length < 0x250) throw bad("file too short");
  const v = new DataView(img.buffer, img.byteOffset, img.byteLength);
  if (Buffer.from(img.subarray(0x202, 0x206)).toString("latin1") !== "HdrS") throw bad('no "HdrS" setup header');
  const protocol = v.getUint16(0x206, true);
  if (protocol < 0x208) throw bad(`boot protocol ${protocol.toString(16)} has no payload fields (need >= 2.08)`);
  const setupSects = img[0x1f1] || 4; // 0 means 4, for historical reasons
  const offset = (setupSects + 1) * 512 + v.getUint32(0x248, true);
  const length = v.getUint32(0x24c, true);
  if (length < 8 || offset + length > img.length) throw bad("payload outside the file");
  return { offset, length, uncompressedSize: v.getUint32(offset + length - 4, true) };
}

/**
 * Returns the decompressed ELF vmlinux. Checks that it is an x86-64 ELF; `hasPvhNote` tells the
 * caller whether it can be booted directly (QEMU `-kernel vmlinux`, Firecracker).
 */
export function extractVmlinux(img: Uint8Array): { vmlinux: Buffer; hasPvhNote: boolean } {
  const p = locatePayload(img);
  const payload = img.subarray(p.offset, p.offset + p.length - 4);
  if (!LZ4_LEGACY_MAGIC.equals(payload.subarray(0, 4))) {
    const magic = Buffer.from(payload.subarray(0, 4)).toString("hex");
    throw bad(`payload is not LZ4 (magic ${magic}); only LZ4-compressed kernels are supported`);
  }
  const vmlinux = decodeLz4Legacy(payload, p.uncompressedSize);
  const elf = inspectElf(vmlinux);
  if (elf === null || !elf.x86_64) throw bad("payload did not decompress to an x86-64 ELF");
  return { vmlinux, hasPvhNote: elf.hasPvhNote };
}
