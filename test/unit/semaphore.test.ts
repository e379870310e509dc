/** The boot queue behind HYPERFLEET_MAX_CONCURRENT_BOOTS: slots, order, abort while queued. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { HyperfleetError, isHyperfleetError } from "../../src/core/errors.js";
import { Semaphore } from "../../src/host/semaphore.js";

test("at most `size` holders; waiters are served in order", async () => {
  const s = new Semaphore(2);
  const r1 = await s.acquire();
  const r2 = await s.acquire();
  const order: number[] = [];
  const w3 = s.acquire().then((r) => (order.push(3), r));
  const w4 = s.acquire().then((r) => (order.push(4), r));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(order, []);
  r1();
  r1(); // releasing twice frees one slot only
  const r3 = await w3;
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(order, [3]);
  r2();
  const r4 = await w4;
  assert.deepEqual(order, [3, 4]);
  r3();
  r4();
  const again = await Promise.all([s.acquire(), s.acquire()]);
  again.forEach((r) => r());
});

test("an aborted wait leaves the queue and rejects with the reason", async () => {
  const s = new Semaphore(1);
  const r1 = await s.acquire();
  const ac = new AbortController();
  const waiting = s.acquire(ac.signal);
  ac.abort(new Error("stop requested"));
  await assert.rejects(waiting, /stop requested/);
  r1();
  const r2 = await s.acquire(); // the slot went back, not to the aborted waiter
  r2();
  await assert.rejects(s.acquire(AbortSignal.abort(new Error("already"))), /already/);
});

test("an aborted wait rejects with one of our errors: OPERATION_CANCELLED, or the HyperfleetError it was given", async () => {
  const s = new Semaphore(1);
  const r1 = await s.acquire();
  const ac = new AbortController();
  const waiting = s.acquire(ac.signal);
  ac.abort(); // a bare AbortError
  await assert.rejects(waiting, (e: unknown) => isHyperfleetError(e, "OPERATION_CANCELLED"));
  await assert.rejects(s.acquire(AbortSignal.abort("a string")), (e: unknown) => isHyperfleetError(e, "OPERATION_CANCELLED"));
  const ours = new AbortController();
  const queued = s.acquire(ours.signal);
  ours.abort(new HyperfleetError("SHUTTING_DOWN", "bye"));
  await assert.rejects(queued, (e: unknown) => isHyperfleetError(e, "SHUTTING_DOWN"));
  r1();
});
