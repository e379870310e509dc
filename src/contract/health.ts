/** Health checks, restart policies and machine events (issue 14): request fields and their views. */
import { Type, type Static } from "@sinclair/typebox";
import { HEALTH_BOUNDS, HEALTH_STATUSES, RESTART_POLICIES, WORKLOAD_EVENT_KINDS } from "../core/health.js";
import { Nullable } from "./common.js";

const seconds = (k: keyof typeof HEALTH_BOUNDS, description: string) =>
  Type.Optional(Type.Integer({ minimum: HEALTH_BOUNDS[k][0], maximum: HEALTH_BOUNDS[k][1], description }));

export const HealthCheckBody = Type.Object(
  {
    http: Type.Optional(
      Type.Object(
        {
          port: Type.Integer({ minimum: 1, maximum: 65535, description: "Guest port" }),
          path: Type.Optional(Type.String({ minLength: 1, maxLength: 2048, pattern: "^/[\\x21-\\x7e]*$", errorMessage: "must be a path starting with '/' (printable ASCII, no spaces)", description: "Default `/`" })),
        },
        { additionalProperties: false, description: "GET http://<network.ip>:<port><path> from the daemon; 2xx and 3xx pass. Needs a network (else 400 HEALTH_CHECK_NEEDS_NETWORK)" },
      ),
    ),
    exec: Type.Optional(Type.Array(Type.String({ maxLength: 65536 }), { minItems: 1, maxItems: 256, description: "Command run in the guest through the agent (with the image's env, directory and user); exit 0 passes", examples: [["/bin/sh", "-c", "test -e /tmp/ready"]] })),
    interval_s: seconds("intervalS", "Seconds between the end of one check and the next (default 30)"),
    timeout_s: seconds("timeoutS", "A check that takes longer fails (default 30)"),
    retries: seconds("retries", "Consecutive failures that make the machine unhealthy (default 3)"),
    start_period_s: seconds("startPeriodS", "Failures in the first seconds after the machine (or its restarted main process) started do not count (default 0)"),
  },
  { additionalProperties: false, description: "Exactly one of `http` and `exec`. Docker HEALTHCHECK's meanings and defaults" },
);
export type HealthCheckBody = Static<typeof HealthCheckBody>;

const PolicyName = Type.Union(RESTART_POLICIES.map((p) => Type.Literal(p)));
export const RestartPolicyBody = Type.Union(
  [
    Type.String({ pattern: "^(no|on-failure|always)(:\\d{1,4})?$", description: "`no`, `on-failure`, `always`; `on-failure:N` limits to N restarts in a row" }),
    Type.Object(
      {
        policy: PolicyName,
        max_restarts: Type.Optional(Type.Integer({ minimum: 0, maximum: 9999, description: "Restarts in a row before giving up (the count starts over once the machine stayed up 10 min); default: no limit" })),
      },
      { additionalProperties: false },
    ),
  ],
  {
    errorMessage: "must be 'no', 'on-failure', 'always' (optionally ':N'), or an object { policy, max_restarts }",
    description:
      "What to do when the main process exits (on-failure: non-zero or killed; always: any exit), the machine becomes unhealthy (restart the main process, or the VM without one) " +
      "or its VMM dies (boot it again); never after a stop or delete you asked for. Backoff 1 s doubling to 60 s. Default `no`",
  },
);
export type RestartPolicyBody = Static<typeof RestartPolicyBody>;

export const HealthCheckSchema = Type.Object({
  http: Nullable(Type.Object({ port: Type.Integer(), path: Type.String() })),
  exec: Nullable(Type.Array(Type.String())),
  interval_s: Type.Integer(),
  timeout_s: Type.Integer(),
  retries: Type.Integer(),
  start_period_s: Type.Integer(),
});

export const HealthSchema = Type.Object(
  {
    status: Type.Union(HEALTH_STATUSES.map((s) => Type.Literal(s)), { description: "`none`: no check, or not running" }),
    failing_streak: Type.Integer(),
    last_check_at: Nullable(Type.String()),
    last_error: Nullable(Type.String()),
  },
  { description: "The health check's last results (kept in the daemon's memory: a daemon restart starts over at `starting`)" },
);

export const RestartPolicySchema = Type.Object({ policy: PolicyName, max_restarts: Nullable(Type.Integer()) });

export const MachineEventSchema = Type.Object({
  kind: Type.Union(WORKLOAD_EVENT_KINDS.map((k) => Type.Literal(k)), { description: "`restart`: the policy restarted something; `restart_limit`: it did not (limit reached, no capacity); `health`: the health status changed" }),
  at: Type.String(),
  message: Type.String(),
  target: Nullable(Type.String({ enum: ["main_process", "vm"], description: "restart: what was restarted" })),
  attempt: Nullable(Type.Integer()),
  backoff_ms: Nullable(Type.Integer()),
  health: Nullable(Type.String({ enum: [...HEALTH_STATUSES], description: "health: the new status" })),
});
export type MachineEventJson = Static<typeof MachineEventSchema>;
