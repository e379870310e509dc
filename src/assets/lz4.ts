/**
 * A decoder for the LZ4 "legacy" frame format (magic 02 21 4c 18), the one the kernel build uses
 * for LZ4-compressed bzImages. Pure TypeScript, so extracting a vmlinux needs no host tool.
 *
 * Legacy frame: magic, then blocks of [u32 LE compressed size][LZ4 block], each block expanding to
 * at most 8 MiB. There is no end marker: the frame ends where its container says it does.
 */
import { HyperfleetError } from "../core/errors.js";

/** The legacy frame magic as it appears in the file. */
export const LZ4_LEGACY_MAGIC = Buffer.from([0x02, 0x21, 0x4c, 0x18]);
const LEGACY_BLOCK_SIZE = 8 << 20;

function corrupt(what: string): HyperfleetError {
  return new HyperfleetError("INTERNAL", `corrupt LZ4 data: ${what}`);
}

/** Decodes one LZ4 block from src[start, end) into dst at dstPos; returns the new dstPos. */
function decodeBlock(src: Uint8Array, start: number, end: number, dst: Uint8Array, dstPos: number): number {
  let ip = start;
  let op = dstPos;
  while (ip < end) {
    const token = src[ip++]!;
    let litLen = token >>> 4;
    if (litLen === 15) {
      let b: number;
      do {
        if (ip >= end) throw corrupt("truncated literal length");
        b = src[ip++]!;
        litLen += b;
      } while (b === 255);
    }
    if (ip + litLen > end || op + litLen > dst.length) throw corrupt("literal run out of bounds");
    dst.set(src.subarray(ip, ip + litLen), op);
    ip += litLen;
    op += litLen;
    if (ip >= end) break; // the last sequence of a block has literals only
    if (ip + 2 > end) throw corrupt("truncated match offset");
    const offset = src[ip]! | (src[ip + 1]! << 8);
    ip += 2;
    if (offset === 0 || offset > op - dstPos) throw corrupt("match offset out of bounds");
    let matchLen = token & 15;
    if (matchLen === 15) {
      let b: number;
      do {
        if (ip >= end) throw corrupt("truncated match length");
        b = src[ip++]!;
        matchLen += b;
      } while (b === 255);
    }
    matchLen += 4;
    if (op + matchLen > dst.length) throw corrupt("match runs past the output");
    let from = op - offset;
    if (offset >= matchLen) {
      dst.copyWithin(op, from, from + matchLen);
      op += matchLen;
    } else {
      // Overlapping match (a repeated pattern): must go byte by byte.
      for (let i = 0; i < matchLen; i++) dst[op++] = dst[from++]!;
    }
  }
  return op;
}

/**
 * Decodes a legacy LZ4 frame that spans all of `frame` (magic included).
 *
 * @param expectedSize the decompressed size if the container records it (the bzImage does); the
 *   result is checked against it.
 */
export function decodeLz4Legacy(frame: Uint8Array, expectedSize?: number): Buffer {
  if (frame.length < 4 || !LZ4_LEGACY_MAGIC.equals(frame.subarray(0, 4))) throw corrupt("missing legacy frame magic");
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  // First pass: count blocks so the output can be allocated once.
  let blocks = 0;
  for (let p = 4; p < frame.length; blocks++) {
    if (p + 4 > frame.length) throw corrupt("truncated block header");
    p += 4 + view.getUint32(p, true);
  }
  const out = Buffer.allocUnsafe(expectedSize ?? blocks * LEGACY_BLOCK_SIZE);
  let op = 0;
  for (let p = 4; p < frame.length; ) {
    const size = view.getUint32(p, true);
    if (p + 4 + size > frame.length) throw corrupt("block runs past the end of the frame");
    op = decodeBlock(frame, p + 4, p + 4 + size, out, op);
    p += 4 + size;
  }
  if (expectedSize !== undefined && op !== expectedSize) {
    throw corrupt(`decompressed to ${op} bytes, expected ${expectedSize}`);
  }
  return out.subarray(0, op);
}
