/** cancellable(): the deadline and the caller's signal both reach the operation as an abort. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { HyperfleetError, isHyperfleetError } from "../../src/core/errors.js";
import { cancellable } from "../../src/host/async.js";

/** An operation that only ends when its signal fires, recording the reason it saw. */
function untilAborted(seen: { reason?: unknown }) {
  return (signal: AbortSignal) =>
    new Promise<never>((_, reject) => {
      signal.addEventListener("abort", () => {
        seen.reason = signal.reason;
        reject(new Error("the operation noticed late"));
      });
    });
}

test("the deadline aborts the operation's signal with the given code and rejects with it", async () => {
  const seen: { reason?: unknown } = {};
  await assert.rejects(cancellable(untilAborted(seen), 20, "FILE_TRANSFER_TIMEOUT", "download of /x"), (e) => isHyperfleetError(e, "FILE_TRANSFER_TIMEOUT"));
  assert.ok(isHyperfleetError(seen.reason, "FILE_TRANSFER_TIMEOUT"));
});

test("an outer abort (client gone) becomes OPERATION_CANCELLED; a HyperfleetError reason is kept", async () => {
  const ac = new AbortController();
  const seen: { reason?: unknown } = {};
  const p = cancellable(untilAborted(seen), 60_000, "AGENT_TIMEOUT", "exec", ac.signal);
  ac.abort();
  await assert.rejects(p, (e) => isHyperfleetError(e, "OPERATION_CANCELLED"));
  assert.ok(isHyperfleetError(seen.reason, "OPERATION_CANCELLED"));

  const closing = new AbortController();
  closing.abort(new HyperfleetError("SHUTTING_DOWN", "bye"));
  let ran = false;
  const q = cancellable(async () => (ran = true), 60_000, "AGENT_TIMEOUT", "exec", closing.signal);
  await assert.rejects(q, (e) => isHyperfleetError(e, "SHUTTING_DOWN"));
  assert.equal(ran, false, "an already aborted call must not start the operation");
});

test("an operation that finishes in time is answered, and a later outer abort changes nothing", async () => {
  const ac = new AbortController();
  let signal: AbortSignal | undefined;
  const v = await cancellable(async (s) => ((signal = s), 42), 60_000, "AGENT_TIMEOUT", "exec", ac.signal);
  assert.equal(v, 42);
  ac.abort();
  assert.equal(signal?.aborted, false);
});
