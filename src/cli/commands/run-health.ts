/**
 * `hyperfleet run`'s health check and restart policy flags (Docker's names): the parseArgs options
 * and the create body fields they make (pure).
 */
import type { CreateMachineBody } from "../../sdk/index.js";
import { str, usageError } from "../args.js";

export const HEALTH_OPTIONS = {
  restart: { type: "string" },
  "health-cmd": { type: "string" },
  "health-http": { type: "string" },
  "health-interval": { type: "string" },
  "health-timeout": { type: "string" },
  "health-retries": { type: "string" },
  "health-start-period": { type: "string" },
} as const;

export const HEALTH_HELP = `      --restart POLICY   no, on-failure[:N], always[:N] (N: most restarts in a row)
      --health-cmd CMD   health check: CMD run with /bin/sh -c in the machine (exit 0 = healthy)
      --health-http PORT/PATH  health check: GET http://<machine ip>:PORT/PATH (needs a network)
      --health-interval DURATION, --health-timeout DURATION, --health-start-period DURATION
                         30s, 1m, or seconds (defaults 30s, 30s, 0s)
      --health-retries N failures in a row that make it unhealthy (default 3)
`;

/** `30`, `30s`, `2m`, `1h` -> whole seconds. */
export function durationS(flag: string, text: string): number {
  const m = /^(\d+)(s|m|h)?$/.exec(text.trim());
  if (!m) throw usageError(`--${flag} ${text}: expected a duration such as 30s, 1m or 10 (seconds)`);
  return Number(m[1]) * (m[2] === "h" ? 3600 : m[2] === "m" ? 60 : 1);
}

/**
 * The body's `health_check` and `restart_policy` from the flags; the daemon checks the bounds.
 *
 * @example healthFields({ "health-http": "8080/healthz", restart: "on-failure:3" }) // { health_check: { http: { port: 8080, path: "/healthz" } }, restart_policy: "on-failure:3" }
 */
export function healthFields(v: Record<string, unknown>): Pick<CreateMachineBody, "health_check" | "restart_policy"> {
  const cmd = str(v["health-cmd"]);
  const http = str(v["health-http"]);
  if (cmd !== undefined && http !== undefined) throw usageError("--health-cmd and --health-http: give one of them");
  const tuning = (["health-interval", "health-timeout", "health-retries", "health-start-period"] as const).filter((k) => v[k] !== undefined);
  if (cmd === undefined && http === undefined && tuning.length > 0) throw usageError(`--${tuning[0]} needs --health-cmd or --health-http`);
  const restart = str(v.restart);
  if (restart !== undefined && !/^(no|on-failure|always)(:\d{1,4})?$/.test(restart)) throw usageError(`--restart ${restart}: expected no, on-failure[:N] or always[:N]`);
  let check: CreateMachineBody["health_check"];
  if (cmd !== undefined || http !== undefined) {
    const d = (k: (typeof tuning)[number]) => (v[k] === undefined ? undefined : durationS(k, String(v[k])));
    const retries = str(v["health-retries"]);
    if (retries !== undefined && !/^\d+$/.test(retries)) throw usageError(`--health-retries ${retries}: expected a whole number`);
    check = {
      ...(cmd !== undefined && { exec: ["/bin/sh", "-c", cmd] }),
      ...(http !== undefined && { http: httpSpec(http) }),
      ...(d("health-interval") !== undefined && { interval_s: d("health-interval") }),
      ...(d("health-timeout") !== undefined && { timeout_s: d("health-timeout") }),
      ...(d("health-start-period") !== undefined && { start_period_s: d("health-start-period") }),
      ...(retries !== undefined && { retries: Number(retries) }),
    };
  }
  return { ...(check !== undefined && { health_check: check }), ...(restart !== undefined && { restart_policy: restart }) };
}

/** `8080`, `8080/healthz` -> { port, path }. */
function httpSpec(text: string): { port: number; path: string } {
  const m = /^(\d{1,5})(\/.*)?$/.exec(text);
  const port = Number(m?.[1]);
  if (!m || port < 1 || port > 65535) throw usageError(`--health-http ${text}: expected PORT or PORT/PATH, e.g. 8080/healthz`);
  return { port, path: m[2] ?? "/" };
}
