/**
 * Health checks and restart policies against real VMs (issue 14, item 3): a failing check makes
 * the machine unhealthy and `on-failure` restarts its main process (up to its limit), a passing one
 * makes it healthy; a main process exiting non-zero is restarted under `on-failure` (limit
 * honoured) and not under `no`; a VMM killed by its pid is booted again under `always`, a user's
 * stop is not; a daemon restart keeps the policy (a VMM that died meanwhile is booted again).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { endDaemons, pidAlive, spawnDaemon, until, vmSkipReason, type ChildDaemon } from "./helpers.js";
import { body, exec, machineWhen, waitStatus, type BusyboxDaemon, type ImageDaemon, type MachineJson } from "./images-helpers.js";
import { startBusyboxDaemon } from "./images-helpers.js";

const skip = vmSkipReason();
let fx: BusyboxDaemon | undefined;
let d: ImageDaemon;
let busybox = "";

before(async () => {
  if (skip) return;
  fx = await startBusyboxDaemon();
  ({ d, busybox } = fx);
});

after(async () => {
  await fx?.close();
});

interface Supervised extends MachineJson {
  pid: number | null;
  health: { status: string; failing_streak: number; last_check_at: string | null; last_error: string | null };
  health_check: { exec: string[] | null; interval_s: number; retries: number } | null;
  restart_policy: { policy: string; max_restarts: number | null };
  restart_count: number;
}
interface EventJson {
  kind: string;
  message: string;
  target: string | null;
  attempt: number | null;
  backoff_ms: number | null;
  health: string | null;
}

const get = async (id: string) => body<Supervised>(await d.req("GET", `/machines/${id}`));
const events = async (id: string) => {
  const r = await d.req("GET", `/machines/${id}/events`);
  assert.equal(r.statusCode, 200, r.body);
  return body<EventJson[]>(r);
};
const when = (id: string, pred: (m: Supervised) => boolean, ms: number, what: string) => machineWhen(d, id, (m) => pred(m as Supervised), ms, what) as Promise<Supervised>;

async function create(spec: Record<string, unknown>): Promise<string> {
  const r = await d.req("POST", "/machines", { vcpu_count: 1, mem_size_mib: 256, start: true, ...spec });
  assert.equal(r.statusCode, 201, r.body);
  return body<MachineJson>(r).id;
}

test("bad health_check and restart_policy bodies are 400s with stable codes", { skip: skip ?? false }, async () => {
  const cases: Array<[Record<string, unknown>, string, string]> = [
    [{ health_check: { http: { port: 80 } } }, "HEALTH_CHECK_NEEDS_NETWORK", "health_check.http"],
    [{ health_check: { exec: ["true"], http: { port: 80 } } }, "INVALID_ARGUMENT", "health_check"],
    [{ health_check: { interval_s: 5 } }, "INVALID_ARGUMENT", "health_check"],
    [{ health_check: { exec: ["true"], interval_s: 0 } }, "INVALID_ARGUMENT", "health_check.interval_s"],
    [{ restart_policy: "sometimes" }, "INVALID_ARGUMENT", "restart_policy"],
    [{ restart_policy: { policy: "no", max_restarts: 3 } }, "INVALID_ARGUMENT", "restart_policy.max_restarts"],
  ];
  for (const [extra, code, field] of cases) {
    const r = await d.req("POST", "/machines", { name: "bad-health", vcpu_count: 1, mem_size_mib: 256, network: false, ...extra });
    assert.equal(r.statusCode, 400, `${JSON.stringify(extra)}: ${r.body}`);
    const e = body<{ error: { code: string; field?: string } }>(r).error;
    assert.equal(e.code, code, JSON.stringify(extra));
    assert.ok(e.field?.startsWith(field.split(".")[0] ?? field), `${JSON.stringify(extra)}: field ${e.field}`);
  }
  assert.equal(body<MachineJson[]>(await d.req("GET", "/machines")).filter((m) => m.name === "bad-health").length, 0, "nothing was created");
});

test("a failing health check makes the machine unhealthy and on-failure restarts its main process; a passing one makes it healthy", { skip: skip ?? false, timeout: 240_000 }, async () => {
  const id = await create({
    name: "hc-exec",
    image: busybox,
    entrypoint: ["/bin/busybox", "sh", "-c"],
    cmd: ["while true; do /bin/busybox sleep 1; done"],
    health_check: { exec: ["/bin/busybox", "test", "-e", "/tmp/ok"], interval_s: 1, timeout_s: 5, retries: 2 },
    restart_policy: { policy: "on-failure", max_restarts: 1 },
  });
  await waitStatus(d, id, "running", 180_000);
  const first = await when(id, (m) => m.main_process?.status === "running" && m.main_process.pid !== null, 15_000, "the main process to run");
  assert.equal(first.health_check?.retries, 2);
  const unhealthy = await when(id, (m) => m.health.status === "unhealthy" || m.restart_count > 0, 30_000, "the check to fail twice");
  assert.match(unhealthy.health.last_error ?? "exit code 1", /exit code 1/);
  // The restart: the main process is killed and started again (a new pid), health starts over.
  const restarted = await when(id, (m) => m.restart_count === 1 && m.main_process?.status === "running" && m.main_process.pid !== first.main_process?.pid, 30_000, "the main process to be restarted");
  assert.equal(restarted.status, "running", "the VM itself was not restarted");
  assert.equal(restarted.pid, first.pid, "same VMM");
  // Still failing: unhealthy again, and the limit (1 restart in a row) stops further restarts.
  await until(async () => (await events(id)).some((e) => e.kind === "restart_limit"), 30_000, "the restart limit event");
  // Now the check passes: healthy, and nothing restarts any more.
  assert.equal((await exec(d, id, ["/bin/busybox", "touch", "/tmp/ok"])).exit_code, 0);
  const healthy = await when(id, (m) => m.health.status === "healthy", 15_000, "the check to pass");
  assert.equal(healthy.health.failing_streak, 0);
  assert.equal(healthy.health.last_error, null);
  assert.equal(healthy.restart_count, 1);
  const ev = await events(id);
  const restarts = ev.filter((e) => e.kind === "restart");
  assert.equal(restarts.length, 1, JSON.stringify(ev));
  assert.deepEqual([restarts[0]?.target, restarts[0]?.attempt, restarts[0]?.backoff_ms], ["main_process", 1, 1000]);
  assert.match(restarts[0]?.message ?? "", /health check failed/);
  const changes = ev.filter((e) => e.kind === "health").map((e) => e.health);
  assert.deepEqual(changes, ["unhealthy", "unhealthy", "healthy"], JSON.stringify(ev));
  await d.req("DELETE", `/machines/${id}`);
});

test("a main process exiting non-zero is restarted under on-failure until the limit, and not under `no`", { skip: skip ?? false, timeout: 240_000 }, async () => {
  const exiting = { image: busybox, entrypoint: ["/bin/busybox", "sh", "-c"], cmd: ["/bin/busybox sleep 1; exit 3"] };
  const limited = await create({ name: "exit-onfail", ...exiting, restart_policy: "on-failure:2" });
  const never = await create({ name: "exit-no", ...exiting, restart_policy: "no" });
  await waitStatus(d, limited, "running", 180_000);
  await waitStatus(d, never, "running", 180_000);
  await until(async () => (await events(limited)).some((e) => e.kind === "restart_limit"), 60_000, "on-failure:2 to give up");
  const ev = await events(limited);
  const restarts = ev.filter((e) => e.kind === "restart");
  assert.deepEqual(restarts.map((e) => [e.target, e.attempt, e.backoff_ms]), [["main_process", 1, 1000], ["main_process", 2, 2000]], JSON.stringify(ev));
  assert.match(restarts[0]?.message ?? "", /exited with code 3/);
  const m = await when(limited, (x) => x.main_process?.status === "exited", 15_000, "the last run to exit");
  assert.equal(m.main_process?.exit_code, 3);
  assert.equal(m.restart_count, 2);
  assert.equal(m.status, "running", "the VM goes on; only its main process was restarted");
  // `no`: the same process exited long ago (the other one was restarted twice meanwhile) and stays exited.
  const n = await when(never, (x) => x.main_process?.status === "exited", 15_000, "the main process to exit");
  assert.equal(n.restart_count, 0);
  assert.deepEqual(await events(never), []);
  await d.req("DELETE", `/machines/${limited}`);
  await d.req("DELETE", `/machines/${never}`);
});

test("a VMM killed by its pid is booted again under `always`; a user's stop is not restarted", { skip: skip ?? false, timeout: 240_000 }, async () => {
  const id = await create({ name: "vmm-always", network: false, restart_policy: "always" });
  const running = await waitStatus(d, id, "running", 120_000);
  const rec = await d.daemon.store.machines.get(id);
  const pid = Number(readFileSync(join(rec!.runDir, "qemu.pid"), "utf8").trim());
  assert.equal(pid, (running as unknown as Supervised).pid);
  process.kill(pid, "SIGKILL");
  await until(async () => !pidAlive(pid), 10_000, "the VMM to die");
  const back = await when(id, (m) => m.status === "running" && m.pid !== null && m.pid !== pid, 120_000, "the VM to run again");
  assert.equal(back.restart_count, 1);
  const ev = await events(id);
  assert.equal(ev.length, 1, JSON.stringify(ev));
  assert.deepEqual([ev[0]?.kind, ev[0]?.target, ev[0]?.attempt, ev[0]?.backoff_ms], ["restart", "vm", 1, 1000]);
  assert.match(ev[0]?.message ?? "", /VMM process died/);
  assert.equal((await exec(d, id, ["echo", "up"])).stdout, "up\n");

  // A stop the user asked for is not a failure: it stays stopped past any backoff.
  assert.equal((await d.req("POST", `/machines/${id}/stop`)).statusCode, 202);
  await waitStatus(d, id, "stopped", 60_000);
  await new Promise((r) => setTimeout(r, 5_000));
  const stopped = await get(id);
  assert.equal(stopped.status, "stopped");
  assert.equal(stopped.restart_count, 1);
  assert.equal((await events(id)).length, 1);
  await d.req("DELETE", `/machines/${id}`);
});

test("after a daemon restart the policy still applies: a VMM that died while no daemon ran is booted again", { skip: skip ?? false, timeout: 300_000 }, async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "hf-health-"));
  const daemons: ChildDaemon[] = [];
  try {
    const a = await spawnDaemon(dataDir);
    daemons.push(a);
    const c = await a.fetch("POST", "/machines", { name: "survivor", vcpu_count: 1, mem_size_mib: 256, network: false, start: true, restart_policy: "always" });
    assert.equal(c.status, 201, JSON.stringify(c.body));
    const id = String(c.body.id);
    const w = await a.fetch("GET", `/machines/${id}/wait?status=running&timeout=30`);
    const w2 = w.status === 200 ? w : await a.fetch("GET", `/machines/${id}/wait?status=running&timeout=30`);
    assert.equal(w2.status, 200, JSON.stringify(w2.body));
    const pid = Number(w2.body.pid);
    a.proc.kill("SIGTERM");
    await a.exited;
    assert.ok(pidAlive(pid), "the VM outlives its daemon");
    process.kill(pid, "SIGKILL");
    await until(async () => !pidAlive(pid), 10_000, "the VMM to die");

    const b = await spawnDaemon(dataDir);
    daemons.push(b);
    const back = await until(async () => {
      const m = await b.fetch("GET", `/machines/${id}`);
      return m.body.status === "running" && m.body.pid !== pid ? m.body : null;
    }, 120_000, "the machine to run again under the new daemon");
    assert.equal(back.restart_count, 1);
    assert.deepEqual(back.restart_policy, { policy: "always", max_restarts: null });
    const ev = (await b.fetch("GET", `/machines/${id}/events`)).body as unknown as EventJson[];
    assert.equal(ev.length, 1, JSON.stringify(ev));
    assert.equal(ev[0]?.target, "vm");
    await b.fetch("DELETE", `/machines/${id}`);
  } finally {
    await endDaemons(daemons, dataDir);
  }
});
