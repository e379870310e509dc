/** Health checks and restart policies: the pure decisions (src/workload/health-policy.ts) and the check scheduler. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { backoffMs, healthCheckSpec, initialHealth, nextHealth, restartDecision, restartPolicyOf, streakAfterUptime, RESET_AFTER_MS } from "../../src/workload/health-policy.js";
import { CheckScheduler } from "../../src/workload/check-scheduler.js";
import { isHyperfleetError } from "../../src/core/errors.js";
import type { HealthCheckSpec } from "../../src/core/health.js";

test("health_check: Docker's defaults, exactly one probe, bounds, an HTTP check needs a network", () => {
  assert.deepEqual(healthCheckSpec({ exec: ["true"] }, false), { probe: { kind: "exec", argv: ["true"] }, intervalS: 30, timeoutS: 30, retries: 3, startPeriodS: 0 });
  assert.deepEqual(healthCheckSpec({ http: { port: 8080 }, intervalS: 5 }, true).probe, { kind: "http", port: 8080, path: "/" });
  const code = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      if (isHyperfleetError(e)) return `${e.code} ${String(e.details?.field)}`;
      throw e;
    }
    return "no error";
  };
  assert.equal(code(() => healthCheckSpec({ http: { port: 80 } }, false)), "HEALTH_CHECK_NEEDS_NETWORK health_check.http");
  assert.equal(code(() => healthCheckSpec({}, true)), "INVALID_ARGUMENT health_check");
  assert.equal(code(() => healthCheckSpec({ exec: ["true"], http: { port: 80 } }, true)), "INVALID_ARGUMENT health_check");
  assert.equal(code(() => healthCheckSpec({ exec: [] }, true)), "INVALID_ARGUMENT health_check.exec");
  assert.equal(code(() => healthCheckSpec({ exec: ["true"], intervalS: 0 }, true)), "INVALID_ARGUMENT health_check.interval_s");
  assert.equal(code(() => healthCheckSpec({ exec: ["true"], retries: 101 }, true)), "INVALID_ARGUMENT health_check.retries");
  assert.equal(code(() => healthCheckSpec({ exec: ["true"], startPeriodS: -1 }, true)), "INVALID_ARGUMENT health_check.start_period_s");
});

test("restart_policy: string and object forms; a limit on `no` is refused", () => {
  assert.deepEqual(restartPolicyOf(undefined), { policy: "no", maxRestarts: null });
  assert.deepEqual(restartPolicyOf("on-failure"), { policy: "on-failure", maxRestarts: null });
  assert.deepEqual(restartPolicyOf("on-failure:3"), { policy: "on-failure", maxRestarts: 3 });
  assert.deepEqual(restartPolicyOf({ policy: "always", maxRestarts: 0 }), { policy: "always", maxRestarts: 0 });
  assert.throws(() => restartPolicyOf("sometimes"), (e) => isHyperfleetError(e, "INVALID_ARGUMENT"));
  assert.throws(() => restartPolicyOf({ policy: "no", maxRestarts: 2 }), (e) => isHyperfleetError(e, "INVALID_ARGUMENT") && e.details?.field === "restart_policy.max_restarts");
});

test("backoff: 1 s doubling to 60 s; the run of failures ends after 10 min up", () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7, 100].map(backoffMs), [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]);
  assert.equal(streakAfterUptime(5, RESET_AFTER_MS - 1), 5);
  assert.equal(streakAfterUptime(5, RESET_AFTER_MS), 0);
});

test("restart decisions: on-failure, always, no, and the limit", () => {
  const of = (p: string, streak: number, f: Parameters<typeof restartDecision>[2]) => restartDecision(restartPolicyOf(p), { restartStreak: streak }, f);
  const exit = (exitCode: number | null, signal: number | null = null) => ({ kind: "main-exit" as const, exitCode, signal });
  // on-failure: non-zero, killed, VMM death, unhealthy restart; a clean exit and a guest poweroff do not.
  assert.deepEqual(of("on-failure", 0, exit(3)), { restart: true, attempt: 1, delayMs: 1000, why: "the main process exited with code 3" });
  assert.equal(of("on-failure", 0, exit(null, 9)).restart, true);
  assert.equal(of("on-failure", 0, exit(0)).restart, false);
  assert.equal(of("on-failure", 0, { kind: "vmm-exit", how: "signal SIGKILL" }).restart, true);
  assert.equal(of("on-failure", 0, { kind: "poweroff" }).restart, false);
  assert.equal(of("on-failure", 0, { kind: "unhealthy", error: "exit code 1" }).restart, true);
  // always: any exit.
  assert.equal(of("always", 0, exit(0)).restart, true);
  assert.equal(of("always", 0, { kind: "poweroff" }).restart, true);
  // no: never.
  for (const f of [exit(1), exit(0), { kind: "vmm-exit" as const, how: "x" }, { kind: "unhealthy" as const, error: null }]) assert.equal(of("no", 0, f).restart, false);
  // The limit counts restarts in a row; the backoff grows with them.
  assert.deepEqual(of("on-failure:2", 1, exit(1)), { restart: true, attempt: 2, delayMs: 2000, why: "the main process exited with code 1" });
  assert.deepEqual(of("on-failure:2", 2, exit(1)), { restart: false, limitReached: true, why: "the main process exited with code 1" });
  assert.equal(of("always:0", 0, exit(1)).restart, false);
});

test("health: passes make it healthy, retries failures in a row unhealthy, the start period forgives", () => {
  const spec: HealthCheckSpec = { probe: { kind: "exec", argv: ["true"] }, intervalS: 1, timeoutS: 1, retries: 2, startPeriodS: 10 };
  const t0 = Date.parse("2026-01-01T00:00:00Z");
  const at = (s: number) => new Date(t0 + s * 1000);
  const fail = { ok: false, error: "exit code 1" };
  const pass = { ok: true, error: null };
  let h = initialHealth(spec);
  assert.equal(h.status, "starting");
  assert.equal(initialHealth(null).status, "none");
  // Within the start period a failure is not counted while still starting.
  h = nextHealth(h, spec, fail, at(1), t0);
  assert.deepEqual([h.status, h.failingStreak, h.lastError], ["starting", 0, "exit code 1"]);
  h = nextHealth(h, spec, pass, at(2), t0);
  assert.deepEqual([h.status, h.failingStreak, h.lastError], ["healthy", 0, null]);
  // Once healthy, failures count even within the start period (Docker's rule).
  h = nextHealth(h, spec, fail, at(3), t0);
  assert.deepEqual([h.status, h.failingStreak], ["healthy", 1]);
  h = nextHealth(h, spec, fail, at(4), t0);
  assert.deepEqual([h.status, h.failingStreak], ["unhealthy", 2]);
  assert.equal(h.lastCheckAt, at(4).toISOString());
  h = nextHealth(h, spec, pass, at(5), t0);
  assert.deepEqual([h.status, h.failingStreak], ["healthy", 0]);
  // After the start period, a machine that never passed goes unhealthy after `retries` failures.
  let s = initialHealth(spec);
  s = nextHealth(s, spec, fail, at(11), t0);
  assert.deepEqual([s.status, s.failingStreak], ["starting", 1]);
  s = nextHealth(s, spec, fail, at(12), t0);
  assert.equal(s.status, "unhealthy");
});

test("scheduler: one check in flight per machine (a slow one delays the next), bounded concurrency, cancel and close clear the timers", async () => {
  let inFlight = 0;
  let maxInFlight = 0;
  const perMachine = new Map<string, number>();
  const runs: string[] = [];
  const sched = new CheckScheduler(2, async (id) => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    perMachine.set(id, (perMachine.get(id) ?? 0) + 1);
    assert.equal(perMachine.get(id), 1, `${id} had two checks at once`);
    runs.push(id);
    await sleep(id === "slow" ? 120 : 15);
    perMachine.set(id, (perMachine.get(id) ?? 1) - 1);
    inFlight--;
  });
  for (const id of ["a", "b", "c", "slow"]) sched.schedule(id, 10, 0);
  await sleep(400);
  sched.cancel("a");
  const aRuns = runs.filter((r) => r === "a").length;
  await sleep(100);
  assert.equal(runs.filter((r) => r === "a").length, aRuns, "a cancelled machine is not checked again");
  sched.close();
  const total = runs.length;
  await sleep(100);
  assert.ok(runs.length <= total + 2, "after close only checks already in flight finish");
  assert.equal(sched.size, 0);
  assert.ok(maxInFlight <= 2, `at most 2 checks at once, saw ${maxInFlight}`);
  // The slow machine's next check is timed from the end of the last: at most 500 ms / 130 ms of them, however late.
  const slow = runs.filter((r) => r === "slow").length;
  assert.ok(slow >= 1 && slow <= 4, `slow checks: ${slow}`);
});
