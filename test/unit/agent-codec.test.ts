import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeFields, encodeFields, encodeFrame, FrameDecoder, FrameError } from "../../src/agent/codec.js";
import { HEADER_SIZE, MAX_PAYLOAD, MsgType, Tag } from "../../src/agent/protocol.js";
import { isHyperfleetError } from "../../src/core/errors.js";

test("a frame survives being split at every byte boundary", () => {
  const payload = encodeFields([[Tag.ARG, "echo"], [Tag.ARG, "hi"], [Tag.TIMEOUT_MS, { u32: 1500 }]]);
  const wire = Buffer.concat([encodeFrame(MsgType.EXEC, 0, 7, payload), encodeFrame(MsgType.PING, 1, 8, Buffer.from([0, 1, 2]))]);
  for (let cut = 0; cut <= wire.length; cut++) {
    const d = new FrameDecoder();
    const frames = [...d.push(wire.subarray(0, cut)), ...d.push(wire.subarray(cut))];
    assert.equal(frames.length, 2);
    assert.equal(frames[0]!.type, MsgType.EXEC);
    assert.equal(frames[0]!.id, 7);
    assert.deepEqual(frames[0]!.payload, payload);
    assert.equal(frames[1]!.flags, 1);
    assert.deepEqual([...frames[1]!.payload], [0, 1, 2]);
  }
});

test("header layout is little-endian length, type, flags, reserved, id", () => {
  const f = encodeFrame(0x21, 1, 0x01020304, Buffer.from("ab"));
  assert.equal(f.length, HEADER_SIZE + 2);
  assert.deepEqual([...f.subarray(0, 12)], [2, 0, 0, 0, 0x21, 1, 0, 0, 4, 3, 2, 1]);
});

test("oversized and reserved-bit frames are protocol errors", () => {
  const big = Buffer.alloc(12);
  big.writeUInt32LE(MAX_PAYLOAD + 1, 0);
  assert.throws(() => new FrameDecoder().push(big), FrameError);
  const reserved = encodeFrame(1, 0, 0);
  reserved.writeUInt16LE(1, 6);
  assert.throws(() => new FrameDecoder().push(reserved), FrameError);
  assert.throws(() => encodeFrame(1, 0, 0, Buffer.alloc(MAX_PAYLOAD + 1)), FrameError);
});

test("fields round-trip with repeats, integers and binary values", () => {
  const bin = Buffer.from([0, 255, 10, 13]);
  const p = encodeFields([
    [Tag.ENV, "A=1"], [Tag.ENV, "B=2"], [Tag.EXIT_CODE, { i32: -1 }], [Tag.SIZE, { u64: 2n ** 40n }],
    [Tag.MTIME_NS, { i64: -5n }], [Tag.STDIN, { u8: 1 }], [Tag.PATH, bin],
  ]);
  const f = decodeFields(p);
  assert.deepEqual(f.all(Tag.ENV).map(String), ["A=1", "B=2"]);
  assert.equal(f.i32(Tag.EXIT_CODE), -1);
  assert.equal(f.u64(Tag.SIZE), 2n ** 40n);
  assert.equal(f.i64(Tag.MTIME_NS), -5n);
  assert.equal(f.u8(Tag.STDIN), 1);
  assert.deepEqual(f.raw(Tag.PATH), bin);
  assert.equal(f.str(Tag.CWD), undefined);
});

test("truncated fields are rejected", () => {
  const p = encodeFields([[Tag.PATH, "/etc/hostname"]]);
  assert.throws(() => decodeFields(p.subarray(0, 3)), FrameError);
  assert.throws(() => decodeFields(p.subarray(0, p.length - 1)), FrameError);
});

test("codec errors are HyperfleetErrors: AGENT_PROTOCOL_ERROR wherever they surface", () => {
  assert.throws(() => decodeFields(Buffer.from([1, 0])), (e: unknown) => isHyperfleetError(e, "AGENT_PROTOCOL_ERROR") && e instanceof FrameError);
});
