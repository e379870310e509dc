/**
 * Health checks and restart policies, the pure part: a create request's settings with Docker's
 * defaults and bounds, the backoff, whether a failure restarts something, and how a check's result
 * moves the machine's health. The supervisor (supervisor.ts) does the timing and the I/O.
 */
import { HyperfleetError } from "../core/errors.js";
import { HEALTH_BOUNDS, HEALTH_DEFAULTS, type HealthCheckInput, type RestartPolicyInput, type RestartPolicyName, type HealthCheckSpec, type HealthProbe, type HealthState, type RestartPolicy, type Supervision } from "../core/health.js";


/** Backoff between restarts: 1 s doubling to 60 s. */
export const BACKOFF_FIRST_MS = 1_000;
export const BACKOFF_MAX_MS = 60_000;
/** A process (or VM) that stayed up this long starts a new run of failures: backoff and limit start over. */
export const RESET_AFTER_MS = 10 * 60_000;

function invalid(field: string, message: string): HyperfleetError {
  return new HyperfleetError("INVALID_ARGUMENT", `${field}: ${message}`, { details: { field } });
}

/**
 * The health check a request asks for, defaults filled in. Exactly one of `http` and `exec`;
 * an HTTP check needs the machine to have a network (the daemon connects to its `network.ip`).
 *
 * @example healthCheckSpec({ exec: ["true"], intervalS: 5 }, false) // { probe: { kind: "exec", argv: ["true"] }, intervalS: 5, timeoutS: 30, retries: 3, startPeriodS: 0 }
 */
export function healthCheckSpec(input: HealthCheckInput, hasNetwork: boolean): HealthCheckSpec {
  if ((input.http === undefined) === (input.exec === undefined)) throw invalid("health_check", "give exactly one of 'http' and 'exec'");
  let probe: HealthProbe;
  if (input.http !== undefined) {
    if (!hasNetwork) {
      throw new HyperfleetError("HEALTH_CHECK_NEEDS_NETWORK", "health_check.http: the daemon reaches the check at the machine's network.ip, and this machine has no network; give it one, or use an 'exec' check", { details: { field: "health_check.http" } });
    }
    const path = input.http.path ?? "/";
    if (!path.startsWith("/")) throw invalid("health_check.http.path", "must start with '/'");
    probe = { kind: "http", port: input.http.port, path };
  } else {
    const argv = input.exec ?? [];
    if (argv.length === 0) throw invalid("health_check.exec", "must name a command");
    probe = { kind: "exec", argv };
  }
  const spec: HealthCheckSpec = {
    probe,
    intervalS: input.intervalS ?? HEALTH_DEFAULTS.intervalS,
    timeoutS: input.timeoutS ?? HEALTH_DEFAULTS.timeoutS,
    retries: input.retries ?? HEALTH_DEFAULTS.retries,
    startPeriodS: input.startPeriodS ?? HEALTH_DEFAULTS.startPeriodS,
  };
  for (const k of ["intervalS", "timeoutS", "retries", "startPeriodS"] as const) {
    const [lo, hi] = HEALTH_BOUNDS[k];
    const v = spec[k];
    if (!Number.isInteger(v) || v < lo || v > hi) throw invalid(`health_check.${snake(k)}`, `must be an integer from ${lo} to ${hi}`);
  }
  return spec;
}

function snake(k: string): string {
  return k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/**
 * `"on-failure"`, `"on-failure:3"`, `{ policy, max_restarts }`; absent: `no`.
 *
 * @example restartPolicyOf("on-failure:3") // { policy: "on-failure", maxRestarts: 3 }
 */
export function restartPolicyOf(input: RestartPolicyInput | undefined): RestartPolicy {
  if (input === undefined) return { policy: "no", maxRestarts: null };
  if (typeof input === "string") {
    const m = /^(no|on-failure|always)(?::(\d{1,4}))?$/.exec(input);
    if (!m) throw invalid("restart_policy", "must be 'no', 'on-failure', 'always' (optionally ':N', the most restarts in a row) or an object { policy, max_restarts }");
    return restartPolicyOf({ policy: m[1] as RestartPolicyName, ...(m[2] !== undefined && { maxRestarts: Number(m[2]) }) });
  }
  if (input.maxRestarts !== undefined && input.policy === "no") throw invalid("restart_policy.max_restarts", "only applies to 'on-failure' and 'always'");
  return { policy: input.policy, maxRestarts: input.maxRestarts ?? null };
}

/** How long to wait before the restart that follows `streak` earlier ones in this run of failures. */
export function backoffMs(streak: number): number {
  return Math.min(BACKOFF_FIRST_MS * 2 ** Math.min(streak, 16), BACKOFF_MAX_MS);
}

/** What went wrong. `vmm-exit`: the VMM died (killed, crashed); `poweroff`: the guest powered itself off. */
export type Failure =
  | { kind: "main-exit"; exitCode: number | null; signal: number | null }
  | { kind: "vmm-exit"; how: string }
  | { kind: "poweroff" }
  | { kind: "unhealthy"; error: string | null };

export type RestartDecision =
  | { restart: false; limitReached: boolean; why: string }
  | { restart: true; attempt: number; delayMs: number; why: string };

/**
 * Whether the policy restarts after `failure`, given the counters so far. `on-failure`: a main
 * process that exited non-zero or was killed, a VMM that died, an unhealthy machine; `always`:
 * also a main process that exited 0 and a guest that powered itself off. Never a stop, restart
 * or delete a user asked for: those never reach here.
 */
export function restartDecision(policy: RestartPolicy, sup: Pick<Supervision, "restartStreak">, failure: Failure): RestartDecision {
  const why = describe(failure);
  if (policy.policy === "no") return { restart: false, limitReached: false, why };
  const clean = (failure.kind === "main-exit" && failure.exitCode === 0 && failure.signal === null) || failure.kind === "poweroff";
  if (clean && policy.policy !== "always") return { restart: false, limitReached: false, why };
  if (policy.maxRestarts !== null && sup.restartStreak >= policy.maxRestarts) return { restart: false, limitReached: true, why };
  return { restart: true, attempt: sup.restartStreak + 1, delayMs: backoffMs(sup.restartStreak), why };
}

function describe(f: Failure): string {
  switch (f.kind) {
    case "main-exit":
      return f.signal !== null ? `the main process was killed by signal ${f.signal}` : `the main process exited with code ${f.exitCode ?? "unknown"}`;
    case "vmm-exit":
      return `the VMM process died (${f.how})`;
    case "poweroff":
      return "the guest powered itself off";
    case "unhealthy":
      return `the health check failed${f.error ? `: ${f.error}` : ""}`;
  }
}

/** The run of failures is over once what was restarted stayed up RESET_AFTER_MS. */
export function streakAfterUptime(streak: number, upMs: number): number {
  return upMs >= RESET_AFTER_MS ? 0 : streak;
}

/** Health of a machine that has a check and just started running (or none). */
export function initialHealth(spec: HealthCheckSpec | null): HealthState {
  return { status: spec === null ? "none" : "starting", failingStreak: 0, lastCheckAt: null, lastError: null };
}

/**
 * One check's result applied (Docker's rules): a pass makes it healthy and clears the streak; a
 * failure within the start period changes nothing while the machine is still `starting`; after
 * it, `retries` failures in a row make it unhealthy.
 */
export function nextHealth(prev: HealthState, spec: HealthCheckSpec, result: { ok: boolean; error: string | null }, at: Date, runningSinceMs: number): HealthState {
  const lastCheckAt = at.toISOString();
  if (result.ok) return { status: "healthy", failingStreak: 0, lastCheckAt, lastError: null };
  const inStartPeriod = at.getTime() - runningSinceMs < spec.startPeriodS * 1000;
  if (inStartPeriod && prev.status === "starting") return { ...prev, lastCheckAt, lastError: result.error };
  const failingStreak = prev.failingStreak + 1;
  return { status: failingStreak >= spec.retries ? "unhealthy" : prev.status, failingStreak, lastCheckAt, lastError: result.error };
}
