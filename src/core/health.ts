/**
 * Health checks and restart policies (issue 14, "Health and restarts"): what a machine asks for at
 * create (kept in the store), and what the daemon reports about it (health, restart events).
 */

/** Docker HEALTHCHECK's defaults: interval 30 s, timeout 30 s, 3 retries, no start period. */
export const HEALTH_DEFAULTS = { intervalS: 30, timeoutS: 30, retries: 3, startPeriodS: 0 } as const;
/** Bounds a request is held to (the API schema and health-policy.ts both use them). */
export const HEALTH_BOUNDS = {
  intervalS: [1, 86_400],
  timeoutS: [1, 3_600],
  retries: [1, 100],
  startPeriodS: [0, 86_400],
} as const;

export const HEALTH_STATUSES = ["none", "starting", "healthy", "unhealthy"] as const;
export type HealthStatus = (typeof HEALTH_STATUSES)[number];

export const RESTART_POLICIES = ["no", "on-failure", "always"] as const;
export type RestartPolicyName = (typeof RESTART_POLICIES)[number];

/** A probe: an HTTP GET to the machine's `network.ip`:port (2xx/3xx passes), or a command run through the agent (exit 0 passes). */
export type HealthProbe = { kind: "http"; port: number; path: string } | { kind: "exec"; argv: string[] };

/** A machine's health check with every default filled in (Docker HEALTHCHECK's meanings, in seconds). */
export interface HealthCheckSpec {
  probe: HealthProbe;
  intervalS: number;
  timeoutS: number;
  /** Consecutive failures (after the start period) that make the machine unhealthy. */
  retries: number;
  /** Failures while the machine has been running for less than this do not count. */
  startPeriodS: number;
}

export interface RestartPolicy {
  policy: RestartPolicyName;
  /** Consecutive restarts allowed (the count starts over once the machine stayed up 10 min); null: no limit. */
  maxRestarts: number | null;
}

/** What the daemon last saw of a machine's health (in memory: it starts over after a daemon restart). */
export interface HealthState {
  status: HealthStatus;
  failingStreak: number;
  lastCheckAt: string | null;
  lastError: string | null;
}

/** A machine's supervision settings and counters, as stored. */
export interface Supervision {
  healthCheck: HealthCheckSpec | null;
  restartPolicy: RestartPolicy;
  /** Restarts done by the policy since the machine was created. */
  restartCount: number;
  /** Restarts in the current run of failures (what max_restarts and the backoff count). */
  restartStreak: number;
}

export const WORKLOAD_EVENT_KINDS = ["restart", "restart_limit", "health"] as const;
export type WorkloadEventKind = (typeof WORKLOAD_EVENT_KINDS)[number];

/** One entry of GET /machines/:id/events. */
export interface WorkloadEvent {
  kind: WorkloadEventKind;
  at: string;
  /** Human words: why a restart happened, the health change. */
  message: string;
  /** restart: the main process or the whole VM. */
  target: "main_process" | "vm" | null;
  /** restart: which restart of the current run of failures (1 = first). */
  attempt: number | null;
  /** restart: how long the daemon waited before it. */
  backoffMs: number | null;
  /** health: the new status. */
  health: HealthStatus | null;
}

/** What GET /machines shows beside the record. */
export interface SupervisionView {
  healthCheck: HealthCheckSpec | null;
  restartPolicy: RestartPolicy;
  restartCount: number;
  health: HealthState;
}

/** A create request's health check, its fields optional (the API's `health_check`, camelCase). */
export interface HealthCheckInput {
  http?: { port: number; path?: string };
  exec?: string[];
  intervalS?: number;
  timeoutS?: number;
  retries?: number;
  startPeriodS?: number;
}

/** A create request's restart policy: the string form (`on-failure:3`) or the object's fields. */
export type RestartPolicyInput = string | { policy: RestartPolicyName; maxRestarts?: number };
