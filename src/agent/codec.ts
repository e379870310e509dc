/**
 * Pure framing codec of the agent protocol (docs/agent-protocol.md): no I/O, so it is unit-tested
 * and fuzzed on its own. The decoder is incremental: feed it whatever the socket delivered.
 */
import { HyperfleetError } from "../core/errors.js";
import { HEADER_SIZE, MAX_PAYLOAD, MsgType, Tag } from "./protocol.js";

export interface Frame {
  type: number;
  flags: number;
  id: number;
  payload: Buffer;
}

/**
 * Raised by the decoder on a frame that breaks the protocol; the connection cannot be resynced.
 * Part of the one hierarchy, so wherever it surfaces it is AGENT_PROTOCOL_ERROR, never INTERNAL.
 */
export class FrameError extends HyperfleetError {
  override readonly name = "FrameError";

  constructor(message: string) {
    super("AGENT_PROTOCOL_ERROR", message);
  }
}

export function encodeHeader(type: number, flags: number, id: number, length: number): Buffer {
  const h = Buffer.allocUnsafe(HEADER_SIZE);
  h.writeUInt32LE(length, 0);
  h.writeUInt8(type, 4);
  h.writeUInt8(flags, 5);
  h.writeUInt16LE(0, 6);
  h.writeUInt32LE(id >>> 0, 8);
  return h;
}

export function encodeFrame(type: number, flags: number, id: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  if (payload.length > MAX_PAYLOAD) throw new FrameError(`payload of ${payload.length} bytes exceeds ${MAX_PAYLOAD}`);
  return Buffer.concat([encodeHeader(type, flags, id, payload.length), payload]);
}

/** Incremental decoder: push() chunks, get back the complete frames they finish. */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;

  push(chunk: Buffer): Frame[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const frames: Frame[] = [];
    while (this.buffered >= HEADER_SIZE) {
      const head = this.peek(HEADER_SIZE);
      const length = head.readUInt32LE(0);
      if (length > MAX_PAYLOAD) throw new FrameError(`frame length ${length} exceeds ${MAX_PAYLOAD}`);
      if (head.readUInt16LE(6) !== 0) throw new FrameError("reserved header bits set");
      if (this.buffered < HEADER_SIZE + length) break;
      const all = this.take(HEADER_SIZE + length);
      frames.push({
        type: all.readUInt8(4),
        flags: all.readUInt8(5),
        id: all.readUInt32LE(8),
        payload: all.subarray(HEADER_SIZE),
      });
    }
    return frames;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0]!.length < n) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0]!.subarray(0, n);
  }

  private take(n: number): Buffer {
    const first = this.chunks[0]!;
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      const all = Buffer.concat(this.chunks);
      out = all.subarray(0, n);
      this.chunks = all.length > n ? [all.subarray(n)] : [];
    }
    this.buffered -= n;
    return out;
  }
}

export type FieldValue = string | Buffer | { u8: number } | { u32: number } | { i32: number } | { u64: bigint | number } | { i64: bigint | number };

/** Encodes `[tag, value]` pairs as `u8 tag | u32 len | bytes`. Strings are UTF-8. */
export function encodeFields(fields: ReadonlyArray<readonly [number, FieldValue]>): Buffer {
  const parts: Buffer[] = [];
  for (const [tag, value] of fields) {
    const body = encodeValue(value);
    const head = Buffer.allocUnsafe(5);
    head.writeUInt8(tag, 0);
    head.writeUInt32LE(body.length, 1);
    parts.push(head, body);
  }
  return Buffer.concat(parts);
}

function encodeValue(v: FieldValue): Buffer {
  if (typeof v === "string") return Buffer.from(v, "utf8");
  if (Buffer.isBuffer(v)) return v;
  if ("u8" in v) return Buffer.from([v.u8 & 0xff]);
  const b = Buffer.allocUnsafe("u32" in v || "i32" in v ? 4 : 8);
  if ("u32" in v) b.writeUInt32LE(v.u32 >>> 0);
  else if ("i32" in v) b.writeInt32LE(v.i32 | 0);
  else if ("u64" in v) b.writeBigUInt64LE(BigInt(v.u64));
  else b.writeBigInt64LE(BigInt(v.i64));
  return b;
}

/** Decoded fields: every occurrence of a tag, in order. */
export class Fields {
  constructor(private readonly map: Map<number, Buffer[]>) {}

  all(tag: number): Buffer[] {
    return this.map.get(tag) ?? [];
  }
  raw(tag: number): Buffer | undefined {
    return this.map.get(tag)?.[0];
  }
  str(tag: number): string | undefined {
    return this.raw(tag)?.toString("utf8");
  }
  u8(tag: number): number | undefined {
    const b = this.raw(tag);
    return b && b.length >= 1 ? b.readUInt8(0) : undefined;
  }
  u32(tag: number): number | undefined {
    const b = this.raw(tag);
    return b && b.length >= 4 ? b.readUInt32LE(0) : undefined;
  }
  i32(tag: number): number | undefined {
    const b = this.raw(tag);
    return b && b.length >= 4 ? b.readInt32LE(0) : undefined;
  }
  u64(tag: number): bigint | undefined {
    const b = this.raw(tag);
    return b && b.length >= 8 ? b.readBigUInt64LE(0) : undefined;
  }
  i64(tag: number): bigint | undefined {
    const b = this.raw(tag);
    return b && b.length >= 8 ? b.readBigInt64LE(0) : undefined;
  }
}

export function decodeFields(payload: Buffer): Fields {
  const map = new Map<number, Buffer[]>();
  let off = 0;
  while (off < payload.length) {
    if (payload.length - off < 5) throw new FrameError("truncated field header");
    const tag = payload.readUInt8(off);
    const len = payload.readUInt32LE(off + 1);
    off += 5;
    if (len > payload.length - off) throw new FrameError(`field ${tag} overruns the payload`);
    const list = map.get(tag) ?? [];
    list.push(payload.subarray(off, off + len));
    map.set(tag, list);
    off += len;
  }
  return new Fields(map);
}

/** A HELLO reply is small; anything claiming more is not one. */
const MAX_HELLO_REPLY = 4096;

/**
 * Finds the guest's HELLO reply that echoes `nonce` in bytes that may begin with the rest of an
 * earlier session, even in the middle of a frame (virtio-serial reconnects: "Reconnecting on
 * virtio-serial" in docs/agent-protocol.md). Returns the reply and the offset just after it, from
 * where a FrameDecoder can take over; null when it is not (completely) in `buf` yet. Bytes before
 * `buf.length - (HEADER_SIZE + 4096)` can never start the reply once this returned null.
 * @example
 *   const hit = findHelloReply(received, nonce);
 *   if (hit) frames = new FrameDecoder().push(received.subarray(hit.end));
 */
export function findHelloReply(buf: Buffer, nonce: Buffer): { frame: Frame; end: number } | null {
  for (let off = 0; off + HEADER_SIZE <= buf.length; off++) {
    if (buf[off + 4] !== MsgType.HELLO || buf.readUInt16LE(off + 6) !== 0 || buf.readUInt32LE(off + 8) !== 0) continue;
    const length = buf.readUInt32LE(off);
    const end = off + HEADER_SIZE + length;
    if (length > MAX_HELLO_REPLY || end > buf.length) continue;
    const payload = buf.subarray(off + HEADER_SIZE, end);
    let fields: Fields;
    try {
      fields = decodeFields(payload);
    } catch {
      continue;
    }
    if (!fields.raw(Tag.NONCE)?.equals(nonce)) continue;
    return { frame: { type: MsgType.HELLO, flags: buf.readUInt8(off + 5), id: 0, payload }, end };
  }
  return null;
}
