/** The byte budget for large request bodies in flight (src/api/limits.ts). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { BodyBudget, serverTimeouts } from "../../src/api/limits.js";

test("bodies are admitted while they fit; one is always admitted alone, even over the budget", () => {
  const b = new BodyBudget(100);
  assert.ok(b.tryReserve(150), "alone, over the budget");
  assert.ok(!b.tryReserve(1), "nothing more while it is in flight");
  b.release(150);
  assert.ok(b.tryReserve(60));
  assert.ok(b.tryReserve(40));
  assert.ok(!b.tryReserve(1));
  assert.equal(b.inFlight, 100);
  b.release(100);
  assert.equal(b.inFlight, 0);
});

test("a growing chunked body does not count its own bytes as someone else's", () => {
  const b = new BodyBudget(100);
  assert.ok(b.tryReserve(80));
  assert.ok(b.tryReserve(80, 80), "it is still alone");
  assert.ok(!b.tryReserve(10), "a second body does not fit");
});

test("Node checks the deadline often enough for short deadlines, and headers never outlast it", () => {
  assert.deepEqual(serverTimeouts(1000), { requestTimeout: 1000, http: { requestTimeout: 1000, headersTimeout: 1000, connectionsCheckingInterval: 250 } });
  assert.equal(serverTimeouts(30_000).http.connectionsCheckingInterval, 1000);
  assert.equal(serverTimeouts(600_000).http.headersTimeout, 60_000);
});
