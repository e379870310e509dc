/**
 * A 1 GiB download through the API keeps the daemon's memory bounded (issue 13): the file (sparse,
 * in the guest) is streamed window by window from the agent while the client reads it, so the
 * daemon child's peak RSS (VmHWM, reset before) grows by far less than the file. Generous bound:
 * +256 MiB. The client hashes what arrives and checks the byte count.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { AUTH, vmSkipReason } from "./helpers.js";
import { memMib, resetPeak, startChildMachine, type ChildMachine } from "./child-machine.js";

const skip = vmSkipReason();
const GIB = 1024 * 1024 * 1024;
let m: ChildMachine;

before(async () => {
  if (skip) return;
  m = await startChildMachine({ HYPERFLEET_FILE_MAX_SIZE: String(GIB) });
});
after(async () => {
  if (m) await m.close();
});

test("a 1 GiB raw download streams with the daemon's RSS within +256 MiB", { skip: skip ?? false, timeout: 600_000 }, async (t) => {
  const mk = await m.exec({ command: ["sh", "-c", "dd if=/dev/zero of=/big bs=1 count=0 seek=1073741824 2>&1 && ls -l /big"] });
  assert.equal(mk.body.exit_code, 0, JSON.stringify(mk.body));
  // Warm up the daemon's code paths, so the peak below is that of the transfer.
  const warm = await fetch(`${m.d.url}/machines/${m.id}/files?path=/etc/hostname`, { headers: { ...AUTH, accept: "application/octet-stream" } });
  await warm.arrayBuffer();
  const before = memMib(m.d.pid);
  resetPeak(m.d.pid);

  const t0 = Date.now();
  const res = await fetch(`${m.d.url}/machines/${m.id}/files?path=/big`, { headers: { ...AUTH, accept: "application/octet-stream" } });
  assert.equal(res.status, 200);
  const hash = createHash("sha256");
  let n = 0;
  let peak = 0;
  let next = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    hash.update(chunk);
    n += chunk.length;
    if (n >= next) {
      peak = Math.max(peak, memMib(m.d.pid).peak);
      next += 64 * 1024 * 1024;
    }
  }
  const s = (Date.now() - t0) / 1000;
  const after = memMib(m.d.pid);
  peak = Math.max(peak, after.peak);
  assert.equal(n, GIB);
  assert.equal(hash.digest("hex"), zerosSha256(GIB));
  t.diagnostic(`1 GiB in ${s.toFixed(1)} s (${(1024 / s).toFixed(0)} MiB/s); daemon RSS ${before.rss.toFixed(0)} MiB before, peak ${peak.toFixed(0)} MiB during`);
  assert.ok(peak - before.rss < 256, `daemon peak RSS grew by ${(peak - before.rss).toFixed(0)} MiB (bound: 256)`);
});

/** sha256 of n zero bytes, computed in 1 MiB steps. */
function zerosSha256(n: number): string {
  const h = createHash("sha256");
  const mib = Buffer.alloc(1024 * 1024);
  for (let left = n; left > 0; left -= mib.length) h.update(left >= mib.length ? mib : mib.subarray(0, left));
  return h.digest("hex");
}
