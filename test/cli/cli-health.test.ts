/**
 * `hyperfleet run --restart/--health-cmd`, `ps` and `inspect` showing health, and `hyperfleet
 * events`, as a user runs them (bin/hyperfleet.js) against a real daemon on loopback; one VM.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { until, vmSkipReason } from "../api/helpers.js";
import { startImageDaemon, type ImageDaemon } from "../api/images-helpers.js";
import { runCli } from "./run-cli.js";

const skip = vmSkipReason();
let d: ImageDaemon | undefined;
let home: string;

before(async () => {
  home = await mkdtemp(join(tmpdir(), "hf-cli-home-"));
  if (skip) return;
  d = await startImageDaemon({ HYPERFLEET_WARM_TEMPLATES: "off" });
});

after(async () => {
  await d?.close();
  if (home) await rm(home, { recursive: true, force: true });
});

const cli = (args: string[]) => runCli({ url: d?.url ?? "", home: home }, args);

test("run --restart --health-cmd; ps and inspect show health; events lists its changes", { skip: skip ?? false, timeout: 180_000 }, async () => {
  const bad = await cli(["run", "-d", "--no-image", "--health-cmd", "true", "--health-http", "80"]);
  // run's own failures are 125 (Docker's), usage errors included.
  assert.equal(bad.code, 125, bad.err);
  assert.match(bad.err, /INVALID_ARGUMENT: --health-cmd and --health-http/);

  const r = await cli(["run", "-d", "--no-image", "--name", "cli-health", "--restart", "on-failure:0", "--health-cmd", "test -e /tmp/ok", "--health-interval", "1s", "--health-retries", "1"]);
  assert.equal(r.code, 0, r.err);
  const id = r.out.trim();
  assert.equal((await cli(["wait", id])).code, 0);
  const [m] = JSON.parse((await cli(["inspect", "cli-health"])).out) as Array<{ health_check: unknown; restart_policy: unknown }>;
  assert.deepEqual(m?.health_check, { http: null, exec: ["/bin/sh", "-c", "test -e /tmp/ok"], interval_s: 1, timeout_s: 30, retries: 1, start_period_s: 0 });
  assert.deepEqual(m?.restart_policy, { policy: "on-failure", max_restarts: 0 });
  await until(async () => (await cli(["ps"])).out.includes("running (unhealthy)"), 30_000, "ps to show it unhealthy");
  assert.equal((await cli(["exec", id, "touch", "/tmp/ok"])).code, 0);
  await until(async () => (await cli(["ps"])).out.includes("running (healthy)"), 30_000, "ps to show it healthy");
  const ev = await cli(["events", "cli-health"]);
  assert.equal(ev.code, 0, ev.err);
  assert.match(ev.out, /health: unhealthy[\s\S]*restart_limit[\s\S]*health: healthy/);
  const evJson = JSON.parse((await cli(["events", "--json", id])).out) as Array<{ kind: string }>;
  assert.deepEqual(evJson.map((e) => e.kind), ["health", "restart_limit", "health"]);
});
