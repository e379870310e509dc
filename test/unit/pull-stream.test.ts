/**
 * The pull stream's bounds over a real loopback HTTP server: a burst of count updates within one
 * phase becomes at most one line per THROTTLE_MS (plus phase changes, each sent at once), the
 * newest counts win, and the Accept header check.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { pullStream, THROTTLE_MS, wantsNdjson } from "../../src/api/routes/pull-stream.js";

test("a burst of progress is throttled; phase changes and the newest counts get through", async () => {
  const server = createServer((_req, res) => {
    const s = pullStream(res, { "x-request-id": "r1" });
    s.progress({ phase: "resolving", layersDone: 0, layersTotal: 0, bytesDone: 0, bytesTotal: 0 });
    const t0 = Date.now();
    let i = 0;
    const burst = setInterval(() => {
      for (let k = 0; k < 100; k++, i++) s.progress({ phase: "downloading", layersDone: 0, layersTotal: 1, bytesDone: i, bytesTotal: 1_000_000 });
      if (Date.now() - t0 >= 5 * THROTTLE_MS) {
        clearInterval(burst);
        s.progress({ phase: "done", layersDone: 1, layersTotal: 1, bytesDone: 1_000_000, bytesTotal: 1_000_000 });
        s.end({ image: { digest: "sha256:x" } });
      }
    }, 1);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  try {
    const t0 = Date.now();
    const r = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
    assert.equal(r.headers.get("x-request-id"), "r1");
    const lines = (await r.text()).trimEnd().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    const elapsed = Date.now() - t0;
    const downloading = lines.filter((l) => l.phase === "downloading");
    // One line at the phase change, then at most one per tick.
    assert.ok(downloading.length >= 1 && downloading.length <= 2 + Math.ceil(elapsed / THROTTLE_MS), `${downloading.length} lines in ${elapsed} ms`);
    assert.deepEqual(lines[0], { phase: "resolving", layers_done: 0, layers_total: 0, bytes_done: 0, bytes_total: 0 });
    assert.deepEqual(lines.at(-2), { phase: "done", layers_done: 1, layers_total: 1, bytes_done: 1_000_000, bytes_total: 1_000_000 });
    assert.deepEqual(lines.at(-1), { image: { digest: "sha256:x" } });
  } finally {
    server.close();
  }
});

test("only an Accept naming application/x-ndjson asks for the stream", () => {
  assert.equal(wantsNdjson("application/x-ndjson"), true);
  assert.equal(wantsNdjson("application/json, application/x-ndjson;q=0.9"), true);
  assert.equal(wantsNdjson("application/json"), false);
  assert.equal(wantsNdjson("*/*"), false);
  assert.equal(wantsNdjson(undefined), false);
});
