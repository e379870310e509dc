/** SharedTasks: one run per key, per-caller cancellation, the run stops when nobody waits. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { SharedTasks } from "../../src/images/shared-task.js";
import { isHyperfleetError } from "../../src/core/errors.js";

function deferred<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

test("concurrent callers share one run and all get its progress and result", async () => {
  const tasks = new SharedTasks<string, number>();
  let starts = 0;
  const gate = deferred<void>();
  const start = async (_s: AbortSignal, emit: (p: number) => void) => {
    starts++;
    await gate.promise;
    emit(1);
    return "done";
  };
  const seen: number[][] = [[], []];
  const a = tasks.run("k", start, { what: "x", onProgress: (p) => seen[0]!.push(p) });
  const b = tasks.run("k", start, { what: "x", onProgress: (p) => seen[1]!.push(p) });
  gate.resolve();
  assert.deepEqual(await Promise.all([a, b]), ["done", "done"]);
  assert.equal(starts, 1);
  assert.deepEqual(seen, [[1], [1]]);
  assert.equal(tasks.size, 0);
});

test("one caller's abort detaches only it; the last one's abort stops the run", async () => {
  const tasks = new SharedTasks<string, number>();
  let runSignal: AbortSignal | undefined;
  const start = (s: AbortSignal) =>
    new Promise<string>((resolve, reject) => {
      runSignal = s;
      s.addEventListener("abort", () => reject(new Error("run aborted")));
      setTimeout(() => resolve("late"), 5_000).unref();
    });
  const c1 = new AbortController();
  const c2 = new AbortController();
  const p1 = tasks.run("k", start, { what: "x", signal: c1.signal });
  const p2 = tasks.run("k", start, { what: "x", signal: c2.signal });
  c1.abort();
  await assert.rejects(p1, (e: unknown) => isHyperfleetError(e, "IMAGE_PULL_ABORTED"));
  await new Promise((r) => setImmediate(r));
  assert.equal(runSignal?.aborted, false);
  c2.abort();
  await assert.rejects(p2, (e: unknown) => isHyperfleetError(e, "IMAGE_PULL_ABORTED"));
  assert.equal(runSignal?.aborted, true);
  assert.equal(tasks.size, 0, "a new caller starts afresh");
});
