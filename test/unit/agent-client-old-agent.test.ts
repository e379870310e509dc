/**
 * An agent that predates detached execs answers a DETACHED exec like an ordinary one (EXEC_STARTED
 * without END). We have no such binary any more, so a peer built on the real codec plays it: the
 * client must kill the process and fail with a stable code, not a plain Error that would surface
 * as AGENT_PROTOCOL_ERROR (a 500 that reads like our bug).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { duplexPair } from "node:stream";
import { AgentClient } from "../../src/agent/client.js";
import { decodeFields, encodeFields, encodeFrame, FrameDecoder } from "../../src/agent/codec.js";
import { MsgType, PROTOCOL_VERSION, Tag } from "../../src/agent/protocol.js";
import { isHyperfleetError } from "../../src/core/errors.js";

test("execDetached on an agent without DETACHED: AGENT_UNSUPPORTED_VERSION, and the process is killed", async () => {
  const [host, guest] = duplexPair();
  const decoder = new FrameDecoder();
  const signals: number[] = [];
  let signalled: () => void = () => undefined;
  const gotSignal = new Promise<void>((resolve) => (signalled = resolve));
  guest.on("data", (chunk: Buffer) => {
    for (const f of decoder.push(chunk)) {
      if (f.type === MsgType.HELLO) {
        const nonce = decodeFields(f.payload).raw(Tag.NONCE)!;
        guest.write(encodeFrame(MsgType.HELLO, 0, 0, encodeFields([[Tag.VERSION, { u32: PROTOCOL_VERSION }], [Tag.NONCE, nonce]])));
      } else if (f.type === MsgType.EXEC) {
        guest.write(encodeFrame(MsgType.EXEC_STARTED, 0, f.id, encodeFields([[Tag.PID, { u32: 42 }]])));
      } else if (f.type === MsgType.SIGNAL) {
        signals.push(decodeFields(f.payload).u32(Tag.SIGNAL) ?? -1);
        signalled();
      }
    }
  });
  const client = await AgentClient.connect(host, { timeoutMs: 5000 });
  try {
    await assert.rejects(client.execDetached(["sleep", "100"]), (e: unknown) => {
      assert.ok(isHyperfleetError(e, "AGENT_UNSUPPORTED_VERSION"), String(e));
      assert.match(e.message, /rebuild the guest image/);
      return true;
    });
    await gotSignal; // the SIGNAL frame is sent before the rejection, but streams deliver it later
    assert.deepEqual(signals, [9]);
  } finally {
    client.close();
    guest.destroy();
  }
});
