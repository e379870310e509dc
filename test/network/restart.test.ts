/**
 * A daemon SIGKILLed in the middle of networked starts and deletes, then restarted, converges
 * (docs/adr/0008, Runtime): the running machine A keeps running and serving through its exposed
 * ports (a WebSocket opened before the kill keeps working), a machine B whose boot was cut short
 * ends `failed` with no namespace, veth or QEMU left and starts again, a machine whose delete was
 * cut short is gone entirely, and the host table holds exactly the rules of the machines that are
 * up. Real daemon child processes inside this file's own namespaces (netns.ts), real VMs.
 * Cleanup: machines deleted, daemons and VMMs of the data dir killed by pid.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { alive, qemusUnder, until, vmSkipReason } from "../api/helpers.js";
import { assertHostClean, assertRulesFor, DaemonHost, getThrough, hostLinks, namespacesOf, networkRows, portOf, type MachineJson } from "./daemon-host.js";
import { inTestNetns, netnsSkipReason } from "./netns.js";
import { buildStaticFixture, staticFixtureSkipReason, type Built } from "./static-fixture.js";
import { Op, WsClient } from "./ws-client.js";

const net = await inTestNetns(import.meta.url);
const skip = netnsSkipReason() ?? vmSkipReason() ?? staticFixtureSkipReason() ?? false;

let h: DaemonHost;
let wsEcho: Built | undefined;
let a: MachineJson;
let ws: WsClient | undefined;
let echoes = 0;

before(async () => {
  if (!net || skip) return;
  h = await DaemonHost.create();
  wsEcho = await buildStaticFixture("ws-echo");
  await h.start();
});
after(async () => {
  ws?.destroy();
  await h?.close();
  await wsEcho?.remove();
});

const nsOf = (id: string) => `hf-${h.tag}-${id}`;

async function echo(): Promise<void> {
  const msg = `echo-${++echoes}`;
  ws!.send(Op.text, msg);
  assert.deepEqual(await ws!.next(10_000, msg), { fin: true, opcode: Op.text, payload: Buffer.from(msg) });
}

/** A is running, the same VM as before, serving HTTP and the old WebSocket through its exposed ports. */
async function assertAUp(): Promise<void> {
  const now = await h.machine(a.id);
  assert.equal(now.status, "running");
  assert.equal(now.pid, a.pid, "the same VMM (adopted, not rebooted)");
  assert.equal(await getThrough(portOf(a, 80)), "machine-a");
  await echo();
}

/** After a restart: what is up on the host is A (and `more`), nothing else. */
function assertOnlyUp(more: MachineJson[] = []): void {
  const up = [a, ...more];
  assert.deepEqual(namespacesOf(h.tag), up.map((m) => nsOf(m.id)).sort(), "namespaces");
  assert.equal(hostLinks().filter((l) => l.startsWith("hfv")).length, up.length, `host veths: ${hostLinks().join(" ")}`);
  assert.deepEqual(qemusUnder(join(h.dataDir, "machines")).map((q) => q.id).sort(), up.map((m) => m.id).sort(), "QEMUs");
  assertRulesFor(up);
}

async function restart(): Promise<void> {
  await h.kill("SIGKILL");
  await h.start();
}

test("machine A runs, serving HTTP and a WebSocket through its exposed ports", { skip }, async () => {
  const created = await h.create("a", true, [80, 81]);
  a = await h.waitFor(created.id, "running");
  await h.serve(a.id, "machine-a");
  const up = await h.d.fetch("POST", `/machines/${a.id}/files`, { path: "/tmp/ws-echo", content: readFileSync(wsEcho!.path).toString("base64"), mode: "755" });
  assert.equal(up.status, 201, JSON.stringify(up.body));
  const run = await h.d.fetch("POST", `/machines/${a.id}/exec`, { command: ["sh", "-c", "/tmp/ws-echo 81 </dev/null >/dev/null 2>&1 &"] });
  assert.equal(run.status, 200, JSON.stringify(run.body));
  assert.equal(await getThrough(portOf(a, 80)), "machine-a");
  const p = portOf(a, 81);
  ws = await until(() => WsClient.connect(p.host_ip, p.host_port, 5000).catch(() => null), 20_000, "the guest's WebSocket echo server");
  await echo();
  assertOnlyUp();
});

/**
 * Resolves as soon as `cond` holds, checking every millisecond: a kill point between two steps of
 * the daemon a few milliseconds apart is hit only by looking that often (cheap checks only).
 */
async function soon(cond: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

const nsFile = (id: string) => `/run/netns/${nsOf(id)}`;

const startKills: Array<{ name: string; when: (b: MachineJson) => Promise<void> }> = [
  { name: "right after the start request", when: () => Promise.resolve() },
  {
    name: "once B's namespace exists, before it runs",
    when: (b) => soon(() => existsSync(nsFile(b.id)), 30_000, "B's namespace"),
  },
  {
    name: "once B's VMM runs, before its agent answers",
    when: (b) => soon(() => qemusUnder(join(h.dataDir, "machines")).some((q) => q.id === b.id), 30_000, "B's VMM"),
  },
];

for (const k of startKills) {
  test(`SIGKILL while B starts (${k.name}): B ends failed with nothing left, starts again; A is untouched`, { skip }, async () => {
    const b = await h.create("b", false);
    const s = await h.d.fetch("POST", `/machines/${b.id}/start`);
    assert.equal(s.status, 202, JSON.stringify(s.body));
    await k.when(b);
    await restart();

    const failed = await h.machine(b.id);
    assert.equal(failed.status, "failed", JSON.stringify(failed));
    assert.equal(failed.last_error?.code, "VMM_EXITED");
    assert.match(failed.last_error?.message ?? "", /interrupted by a daemon restart/);
    assert.deepEqual(failed.network, b.network, "B keeps its address");
    assert.deepEqual(failed.exposed_ports, b.exposed_ports, "and its host port");
    assertOnlyUp();
    await assertAUp();
    assert.deepEqual(networkRows(h.dataDir), { slots: 2, ports: 3 });

    assert.equal((await h.d.fetch("POST", `/machines/${b.id}/start`)).status, 202);
    const running = await h.waitFor(b.id, "running");
    await h.serve(b.id, "machine-b");
    assert.equal(await getThrough(portOf(b, 80)), "machine-b");
    assertOnlyUp([running]);

    assert.equal((await h.d.fetch("DELETE", `/machines/${b.id}`)).status, 204);
    assertOnlyUp();
    assert.deepEqual(networkRows(h.dataDir), { slots: 1, ports: 2 });
  });
}

const deleteKills: Array<{ name: string; when: (b: MachineJson) => Promise<void> }> = [
  {
    name: "once its VMM is gone",
    when: (b) => soon(() => !alive(b.pid!), 30_000, "its VMM to go"),
  },
  {
    name: "once its namespace is gone",
    when: (b) => soon(() => !existsSync(nsFile(b.id)), 30_000, "its namespace to go"),
  },
];

for (const k of deleteKills) {
  test(`SIGKILL while a running networked machine is deleted (${k.name}): nothing of it remains`, { skip }, async () => {
    const b = await h.create("doomed", true);
    const running = await h.waitFor(b.id, "running");
    await h.serve(b.id, "doomed");
    assertOnlyUp([running]);
    // The answer never comes: the daemon dies under it.
    const del = h.d.fetch("DELETE", `/machines/${b.id}`).catch(() => null);
    await k.when(running);
    await restart();
    await del;

    assert.equal((await h.d.fetch("GET", `/machines/${b.id}`)).status, 404, "the delete was finished");
    assertOnlyUp();
    await assertAUp();
    assert.deepEqual(networkRows(h.dataDir), { slots: 1, ports: 2 });
  });
}

test("deleting A leaves the host clean", { skip }, async () => {
  ws?.destroy();
  ws = undefined;
  assert.equal((await h.d.fetch("DELETE", `/machines/${a.id}`)).status, 204);
  assertHostClean(h);
  assert.deepEqual(networkRows(h.dataDir), { slots: 0, ports: 0 });
});

// With no other machine up after the restart, nothing else makes the new daemon rebuild the host
// table: what the cut-short stop or delete left there must still go.
type Cut = "delete" | "stop" | "vmm exit";
const aloneKills: Array<{ name: string; action: Cut; when: (c: MachineJson) => Promise<void> }> = [
  { name: "delete, once its VMM is gone", action: "delete", when: deleteKills[0]!.when },
  { name: "delete, once its namespace is gone", action: "delete", when: deleteKills[1]!.when },
  { name: "stop, once its VMM is gone", action: "stop", when: deleteKills[0]!.when },
  // The daemon notices the exit and takes the network down: cut between the namespace and the rules.
  { name: "vmm exit, once its namespace is gone", action: "vmm exit", when: deleteKills[1]!.when },
];

function cut(c: MachineJson, action: Cut): Promise<unknown> {
  if (action === "vmm exit") {
    process.kill(c.pid!, "SIGKILL"); // the test's own VM (its pid from the API, in this test's data dir)
    return Promise.resolve();
  }
  return (action === "delete" ? h.d.fetch("DELETE", `/machines/${c.id}`) : h.d.fetch("POST", `/machines/${c.id}/stop`)).catch(() => null);
}

for (const k of aloneKills) {
  test(`SIGKILL during the ${k.name}, no other machine up: the host table keeps no rule of it`, { skip }, async () => {
    const c = await h.create("alone", true);
    const running = await h.waitFor(c.id, "running");
    assertRulesFor([running]);
    const req = cut(running, k.action);
    await k.when(running);
    await restart();
    await req;

    if (k.action === "delete") assert.equal((await h.d.fetch("GET", `/machines/${c.id}`)).status, 404, "the delete was finished");
    else assert.equal((await h.machine(c.id)).status, k.action === "stop" ? "stopped" : "failed", "the stop was finished, the exit recorded");
    assertHostClean(h);
    if (k.action !== "delete") assert.equal((await h.d.fetch("DELETE", `/machines/${c.id}`)).status, 204);
    assertHostClean(h);
    assert.deepEqual(networkRows(h.dataDir), { slots: 0, ports: 0 });
  });
}
