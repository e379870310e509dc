/**
 * Issue 14, item 5: the fireclaw flow end to end, as docs/agents.md shows it, with the `hyperfleet`
 * CLI (bin/hyperfleet.js, as a user runs it) against a real daemon and real VMs inside this file's
 * namespaces (netns.ts). One agent gateway for one user: a machine from an image built here
 * (test/agents/gateway-image.ts: the ws-echo server as its main process), with env and a secret,
 * its port on a private URL through the daemon's TLS proxy, an HTTP health check, the on-failure
 * restart policy, its logs, and a volume for its state that outlives the machine.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { vmSkipReason } from "../api/helpers.js";
import { runCli } from "../cli/run-cli.js";
import { startRegistry, type TestRegistry } from "../images/registry.js";
import { startNetDaemon, type NetDaemon } from "../network/daemon.js";
import { inTestNetns, netnsSkipReason } from "../network/netns.js";
import { viaProxy, type ProxyAt } from "../network/proxy-client.js";
import { staticFixtureSkipReason } from "../network/static-fixture.js";
import { Op, WsClient } from "../network/ws-client.js";
import { GATEWAY_PORT, pushGatewayImage } from "./gateway-image.js";

const net = await inTestNetns(import.meta.url);
const skip = netnsSkipReason() ?? vmSkipReason() ?? staticFixtureSkipReason() ?? false;
const DOMAIN = "hf.localhost";
const API_TOKEN = `tok-${process.pid}-${Date.now()}`;
/** A TCG guest under a loaded host: generous, and every wait below names what it waited for. */
const WAIT_MS = 120_000;

let registry: TestRegistry | undefined;
let nd: NetDaemon | undefined;
let work = "";
let image = "";

/** The CLI with its own HOME, pointed at the test daemon; the secret comes from its environment. */
const cli = (args: string[]) => runCli({ url: nd!.d.url, home: work, extraEnv: { API_TOKEN }, timeoutMs: WAIT_MS }, args);

async function ok(args: string[]): Promise<string> {
  const r = await cli(args);
  assert.equal(r.code, 0, `hyperfleet ${args.join(" ")}: ${r.code}\n${r.out}${r.err}`);
  return r.out;
}

async function until<T>(what: string, fn: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) assert.fail(`waited ${WAIT_MS} ms for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

type MachineJson = {
  id: string;
  status: string;
  urls: { port: number; url: string; visibility: string }[];
  health: { status: string };
  restart_count: number;
  secret_names: string[];
  volumes: { name: string; mount: string }[];
  main_process: { status: string } | null;
};
const inspect = async (name: string) => (JSON.parse(await ok(["inspect", name])) as MachineJson[])[0]!;
type EventJson = { kind: string; target: string | null; health: string | null; message: string };
const events = async (name: string) => JSON.parse(await ok(["events", "--json", name])) as EventJson[];

before(async () => {
  if (!net || skip) return;
  work = await mkdtemp(join(tmpdir(), "hft-gateway-"));
  registry = await startRegistry();
  image = await pushGatewayImage(work, registry.host);
  nd = await startNetDaemon({ HYPERFLEET_PROXY_ADDR: "127.0.0.1:0", HYPERFLEET_DOMAIN: DOMAIN, HYPERFLEET_INSECURE_REGISTRIES: registry.host });
});

after(async () => {
  try {
    // The CLI made these machines, so the harness does not know them: a failed run leaves some.
    const left = nd ? ((await nd.d.fetch("GET", "/machines")).body as unknown as { id: string }[]) : [];
    for (const m of left) await nd!.d.fetch("DELETE", `/machines/${m.id}`);
    await nd?.close();
  } finally {
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  }
});

/** Opens the gateway's WebSocket through the proxy (TLS checked against the daemon's CA) and reads its greeting. */
async function openGateway(at: ProxyAt, url: string, token: string): Promise<{ ws: WsClient; greeting: string[] }> {
  const host = new URL(url).hostname;
  // Retried while the main process starts listening behind the proxy (502 until then).
  const ws = await until("the gateway's WebSocket through the proxy", async () =>
    WsClient.connect(at.addr, at.port, 10_000, { tls: { ca: at.ca!, servername: host }, hostHeader: `${host}:${at.port}`, headers: { "X-Hyperfleet-Token": token } }).catch(() => undefined),
  );
  const greeting = [(await ws.next(10_000, "history")).payload.toString(), (await ws.next(10_000, "secret")).payload.toString()];
  return { ws, greeting };
}

test("an agent gateway per user: image, env and secret, private URL, health check, restart policy, logs, volume", { skip, timeout: 900_000 }, async () => {
  await ok(["volume", "create", "--size", "64m", "alice-state"]);
  const run = (name: string) =>
    ok([
      "run", "-d", "--name", name,
      "-e", "GATEWAY_USER=alice",
      "--secret", "API_TOKEN",
      "--service", `${GATEWAY_PORT}:private`,
      "--health-http", `${GATEWAY_PORT}/health`, "--health-interval", "2s", "--health-timeout", "2s", "--health-retries", "2",
      "--restart", "on-failure:5",
      "-v", "alice-state:/data",
      image,
    ]); // prettier-ignore
  const id = (await run("gw-alice")).trim();
  assert.match(id, /^vm_/);

  // Healthy once its main process serves /health; its secret and volume are what it was given.
  let m = await until("gw-alice healthy", async () => {
    const v = await inspect("gw-alice");
    return v.status === "running" && v.health.status === "healthy" ? v : undefined;
  });
  assert.deepEqual(m.secret_names, ["API_TOKEN"]);
  assert.deepEqual(m.volumes.map((v) => [v.name, v.mount]), [["alice-state", "/data"]]);
  assert.ok(!JSON.stringify(m).includes(API_TOKEN), "the secret's value is in no machine JSON");
  const url = m.urls.find((u) => u.port === GATEWAY_PORT);
  assert.ok(url && url.visibility === "private", `a private URL for ${GATEWAY_PORT}: ${JSON.stringify(m.urls)}`);
  const at: ProxyAt = { addr: "127.0.0.1", port: Number(new URL(url.url).port), ca: await readFile(join(nd!.dataDir, "proxy", "ca.crt")) };
  const token = (await ok(["token", "gw-alice"])).trim();

  // The private URL: refused without the token, the gateway with it.
  const host = new URL(url.url).hostname;
  assert.equal((await viaProxy(at, host, "/health")).status, 401, "no token: 401");
  assert.equal((await viaProxy(at, host, "/health", { "X-Hyperfleet-Token": token })).body, "ok\n");
  const first = await openGateway(at, url.url, token);
  assert.deepEqual(first.greeting, ["history 0", `secret ${API_TOKEN.length}`], "an empty volume; the secret file as long as the secret");
  for (const msg of ["hello", "remember me"]) {
    first.ws.send(Op.text, msg);
    assert.equal((await first.ws.next(10_000, `the echo of ${msg}`)).payload.toString(), msg);
  }
  first.ws.destroy();

  // Its main process's output, and its environment (set with -e) as the process sees it.
  assert.match(await ok(["logs", "gw-alice"]), new RegExp(`ws-echo: listening on 0\\.0\\.0\\.0:${GATEWAY_PORT}`));
  assert.match(await ok(["exec", "gw-alice", "sh", "-c", "tr '\\0' '\\n' < /proc/$(pidof ws-echo | tr ' ' '\\n' | sort -n | head -1)/environ"]), /^GATEWAY_USER=alice$/m);

  // Unhealthy: on-failure restarts the main process; it is healthy again once /health is.
  await ok(["exec", "gw-alice", "touch", "/tmp/unhealthy"]);
  await until("a restart of the unhealthy main process", async () => ((await events("gw-alice")).some((e) => e.kind === "restart" && e.target === "main_process") ? true : undefined));
  await ok(["exec", "gw-alice", "rm", "-f", "/tmp/unhealthy"]);
  m = await until("gw-alice healthy again", async () => {
    const v = await inspect("gw-alice");
    return v.health.status === "healthy" && v.main_process?.status === "running" ? v : undefined;
  });
  assert.ok(m.restart_count >= 1, `restart_count ${m.restart_count}`);
  const seen = (await events("gw-alice")).filter((e) => e.kind === "health").map((e) => e.health);
  assert.ok(seen.includes("unhealthy") && seen.lastIndexOf("healthy") > seen.indexOf("unhealthy"), `health events: ${seen.join(", ")}`);

  // The state is on the volume: the restarted process and then a new machine find it.
  const again = await openGateway(at, url.url, token);
  assert.equal(again.greeting[0], "history 2");
  again.ws.destroy();
  assert.match((await cli(["run", "-d", "--name", "gw-intruder", "-v", "alice-state:/data", image])).err, /VOLUME_IN_USE/, "one writer at a time");
  await ok(["rm", "-f", "gw-alice"]);
  await run("gw-alice");
  m = await until("the new gw-alice healthy", async () => {
    const v = await inspect("gw-alice");
    return v.status === "running" && v.health.status === "healthy" ? v : undefined;
  });
  assert.notEqual(m.id, id);
  const newUrl = m.urls.find((u) => u.port === GATEWAY_PORT)!.url;
  const third = await openGateway(at, newUrl, (await ok(["token", "gw-alice"])).trim());
  assert.deepEqual(third.greeting, ["history 2", `secret ${API_TOKEN.length}`], "the new machine has the old state and its own secret");
  third.ws.destroy();

  await ok(["rm", "-f", "gw-alice"]);
  await ok(["volume", "rm", "alice-state"]);
  assert.doesNotMatch(await ok(["volume", "ls", "-q"]), /alice-state/);
});
