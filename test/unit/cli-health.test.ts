/** `hyperfleet run`'s health and restart flags -> the create body (src/cli/commands/run-health.ts). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { durationS, healthFields } from "../../src/cli/commands/run-health.js";

test("health and restart flags make health_check and restart_policy; Docker's durations", () => {
  assert.deepEqual(healthFields({}), {});
  assert.deepEqual(healthFields({ restart: "on-failure:3" }), { restart_policy: "on-failure:3" });
  assert.deepEqual(healthFields({ "health-cmd": "curl -f localhost", "health-interval": "1m", "health-timeout": "5s", "health-retries": "2", "health-start-period": "10" }), {
    health_check: { exec: ["/bin/sh", "-c", "curl -f localhost"], interval_s: 60, timeout_s: 5, retries: 2, start_period_s: 10 },
  });
  assert.deepEqual(healthFields({ "health-http": "8080/healthz?x=1" }), { health_check: { http: { port: 8080, path: "/healthz?x=1" } } });
  assert.deepEqual(healthFields({ "health-http": "80" }), { health_check: { http: { port: 80, path: "/" } } });
  assert.equal(durationS("x", "2h"), 7200);
});

test("bad health and restart flags are usage errors naming the flag", () => {
  const usage = (v: Record<string, unknown>, flag: string) => assert.throws(() => healthFields(v), (e: Error) => e.message.includes(flag), JSON.stringify(v));
  usage({ "health-cmd": "true", "health-http": "80" }, "--health-cmd and --health-http");
  usage({ "health-interval": "5s" }, "--health-interval needs --health-cmd or --health-http");
  usage({ restart: "unless-stopped" }, "--restart unless-stopped");
  usage({ "health-http": "http://x/" }, "--health-http");
  usage({ "health-http": "70000" }, "--health-http");
  usage({ "health-cmd": "true", "health-interval": "5 minutes" }, "--health-interval");
  usage({ "health-cmd": "true", "health-retries": "-1" }, "--health-retries");
});
