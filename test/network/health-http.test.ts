/**
 * HTTP health checks (issue 14, item 3) through a real daemon inside this file's own namespaces
 * (netns.ts): the daemon GETs the machine's `network.ip`:port. With no server the machine becomes
 * unhealthy and `on-failure` restarts the VM (it has no main process), an event says so; once
 * busybox httpd serves the path it is healthy; killing the server makes it unhealthy again, and
 * the limit (one restart in a row) keeps it from being restarted a second time.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { until, vmSkipReason } from "../api/helpers.js";
import { startNetDaemon, type NetDaemon, type NetMachine } from "./daemon.js";
import { inTestNetns, netnsSkipReason } from "./netns.js";

const net = await inTestNetns(import.meta.url);
const skip = netnsSkipReason() ?? vmSkipReason() ?? false;

interface Supervised extends NetMachine {
  pid: number | null;
  health: { status: string; failing_streak: number; last_error: string | null };
  restart_count: number;
}
interface EventJson {
  kind: string;
  target: string | null;
  health: string | null;
  message: string;
}

let nd: NetDaemon | undefined;

before(async () => {
  if (!net || skip) return;
  nd = await startNetDaemon();
});

after(async () => {
  await nd?.close();
});

test("an HTTP check: unhealthy without a server (on-failure restarts the VM), healthy once it serves, unhealthy again when it stops", { skip, timeout: 300_000 }, async () => {
  const d = nd!;
  const get = async (id: string) => (await d.get(id)) as Supervised;
  const when = (id: string, pred: (m: Supervised) => boolean, ms: number, what: string) => until(async () => {
    const m = await get(id);
    return pred(m) ? m : null;
  }, ms, what);
  const events = async (id: string) => (await d.d.fetch("GET", `/machines/${id}/events`)).body as unknown as EventJson[];

  const vm = (await d.boot({ health_check: { http: { port: 80, path: "/index.html" }, interval_s: 1, timeout_s: 2, retries: 2 }, restart_policy: "on-failure:1" })) as Supervised;
  const back = await when(vm.id, (m) => m.restart_count === 1 && m.status === "running" && m.pid !== vm.pid, 120_000, "the VM to be restarted for being unhealthy");
  const ev = await events(vm.id);
  assert.ok(ev.some((e) => e.kind === "health" && e.health === "unhealthy"), JSON.stringify(ev));
  const restart = ev.find((e) => e.kind === "restart");
  assert.equal(restart?.target, "vm", JSON.stringify(ev));
  assert.match(restart?.message ?? "", /health check failed: .*(ECONNREFUSED|timed out)/);

  // Serve the path: healthy.
  const r = await d.sh(back.id, "mkdir -p /tmp/www && echo ok > /tmp/www/index.html && httpd -p 80 -h /tmp/www </dev/null >/dev/null 2>&1");
  assert.equal(r.exit_code, 0, r.stderr);
  const healthy = await when(vm.id, (m) => m.health.status === "healthy", 30_000, "the HTTP check to pass");
  assert.equal(healthy.health.last_error, null);

  // Stop serving: unhealthy, and at the limit it is not restarted again.
  assert.equal((await d.sh(vm.id, "killall httpd")).exit_code, 0);
  const sick = await when(vm.id, (m) => m.health.status === "unhealthy", 30_000, "the HTTP check to fail again");
  assert.match(sick.health.last_error ?? "", /ECONNREFUSED/);
  await until(async () => (await events(vm.id)).some((e) => e.kind === "restart_limit"), 10_000, "the limit event");
  const after = await get(vm.id);
  assert.equal(after.restart_count, 1);
  assert.equal(after.pid, back.pid, "not restarted a second time");
});
