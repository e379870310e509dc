/**
 * Exec and file transfer benchmark (issue 13, `npm run bench:exec`), each through the HTTP API
 * (real socket on loopback) against the agent channel alone (the daemon's own AgentClient of the
 * same VM), measured in the same run, alternating which goes first so drift hits both:
 * 1. exec round trip of `true`: POST /exec (sync, one keep-alive connection) and GET /exec/ws
 *    (WebSocket: upgrade, start, `exit`, close: one exec is one connection, as a client has it)
 *    vs AgentClient.exec, p50/p99 of BENCH_EXEC_ROUNDS each. These clients run in the daemon's
 *    process (a child's process start would dwarf a round trip): their own CPU counts against the
 *    API, so the ratios are an upper bound of its cost.
 * 2. upload and download MiB/s: PUT /files (raw body) and GET /files (Accept:
 *    application/octet-stream, streamed) with curl, a client in its own process as users have
 *    (an in-process fetch would compete with the daemon for its event loop), vs
 *    AgentClient.writeFile (with fsync, as the API's) and readFile. Target: the API at >= 70 % of
 *    the agent channel. The host is shared: medians of alternating runs.
 * Human table first, then one JSON line with every figure last.
 *
 * Env: BENCH_EXEC_ROUNDS (default 50), BENCH_EXEC_RUNS (default 5), BENCH_EXEC_MIB (64), HYPERFLEET_ASSETS_DIR (default
 * /var/lib/hyperfleet), HYPERFLEET_ACCEL (auto).
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import WebSocket from "ws";
import type { AgentClient } from "../src/agent/client.js";
import { loadConfig } from "../src/config/config.js";
import { startDaemon } from "../src/daemon/daemon.js";
import { median, pct, round } from "./stats.js";
import { printReport } from "./report.js";

const ROUNDS = Number(process.env.BENCH_EXEC_ROUNDS ?? 50);
const RUNS = Number(process.env.BENCH_EXEC_RUNS ?? 5);
const MIB = Number(process.env.BENCH_EXEC_MIB ?? 64);
const KEY = "bench-key-0123456789abcdef";
const ASSETS = process.env.HYPERFLEET_ASSETS_DIR ?? "/var/lib/hyperfleet";
const ACCEL = process.env.HYPERFLEET_ACCEL ?? "auto";
const TARGET = 0.7;

const dataDir = await mkdtemp(join(tmpdir(), "hf-bench-exec-"));
const config = loadConfig({
  HYPERFLEET_DATA_DIR: dataDir,
  HYPERFLEET_ASSETS_DIR: ASSETS,
  HYPERFLEET_API_KEY: KEY,
  HYPERFLEET_ACCEL: ACCEL,
  HYPERFLEET_FILE_MAX_SIZE: String(Math.max(MIB, 1) * 1024 * 1024),
  HYPERFLEET_BODY_TIMEOUT: "600000",
  HYPERFLEET_NETWORK_DEFAULT: "off",
  PORT: "0",
  LOG_LEVEL: "silent",
}).unwrap();
const daemon = await startDaemon(config, { logger: pino({ level: "silent" }) });
const base = daemon.url!;
const auth = { authorization: `Bearer ${KEY}` };

async function api(method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { ...auth, "content-type": "application/json" },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${method} ${path} -> ${res.status} ${text}`);
  return text ? (JSON.parse(text) as Record<string, unknown>) : {};
}

/** curl's `%{http_code} %{size_download}`; rejects when curl itself fails. */
function curl(args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile("curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", "-H", `authorization: Bearer ${KEY}`, ...args], (e, out) => (e ? reject(e) : resolve(out))),
  );
}

/** One exec over the WebSocket protocol (docs/exec-stream.md): resolves on `exit` and the close after it. */
function wsExec(url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, undefined, { headers: auth });
    let exit: { exit_code?: number } | undefined;
    ws.once("open", () => ws.send(JSON.stringify({ command: ["true"], stdin: false })));
    ws.on("message", (data: Buffer, binary: boolean) => {
      if (binary) return;
      const m = JSON.parse(data.toString()) as { type: string; exit_code?: number };
      if (m.type === "exit") exit = m;
      else if (m.type === "error") reject(new Error(`exec/ws: ${data.toString()}`));
    });
    ws.once("close", () => (exit?.exit_code === 0 ? resolve() : reject(new Error(`exec/ws closed without exit 0: ${JSON.stringify(exit)}`))));
    ws.once("error", reject);
  });
}

const mibps = (bytes: number, ms: number) => bytes / 1024 / 1024 / (ms / 1000);

async function timed(fn: () => Promise<void>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

try {
  const m = await api("POST", "/machines", { name: "bench-exec", vcpu_count: 1, mem_size_mib: 512, start: true });
  const id = String(m.id);
  await api("GET", `/machines/${id}/wait?status=running&timeout=30`);
  const agent: AgentClient = daemon.service.live.get(id)!.agent!;
  const data = randomBytes(MIB * 1024 * 1024);
  const local = join(dataDir, "bench.bin");
  await writeFile(local, data);

  // --- 1. exec round trip (sync + WebSocket vs agent channel) ---
  const execApi = async () => {
    const r = await api("POST", `/machines/${id}/exec`, { command: ["true"] });
    if (r.exit_code !== 0) throw new Error(`exec via API: ${JSON.stringify(r)}`);
  };
  const execWs = () => wsExec(`${base.replace(/^http/, "ws")}/machines/${id}/exec/ws`);
  const execAgent = async () => {
    const r = await agent.exec(["true"]);
    if (r.exitCode !== 0) throw new Error(`exec via agent: ${JSON.stringify(r)}`);
  };
  const e = { sync: [] as number[], ws: [] as number[], agent: [] as number[] };
  const execs: Array<[keyof typeof e, () => Promise<void>]> = [["agent", execAgent], ["sync", execApi], ["ws", execWs]];
  // Warm-up (JIT, the connection, the guest's page cache of `true`). Not measured.
  for (let i = 0; i < 5; i++) for (const [, fn] of execs) await fn();
  for (let i = 0; i < ROUNDS; i++) {
    // Rotate the order each round, so drift and any after-effect of one kind hit all three.
    for (let j = 0; j < execs.length; j++) {
      const [k, fn] = execs[(i + j) % execs.length]!;
      e[k].push(await timed(fn));
    }
  }
  const ex = (xs: number[]) => ({ p50: round(pct(xs, 50)), p99: round(pct(xs, 99)) });
  const exec = { sync: ex(e.sync), ws: ex(e.ws), agent: ex(e.agent) };

  // --- 2. upload / download ---
  const upApi = async () => {
    const out = await curl(["-T", local, "-H", "content-type: application/octet-stream", `${base}/machines/${id}/files?path=/tmp/bench-api.bin`]);
    if (!out.startsWith("201 ")) throw new Error(`PUT -> ${out}`);
  };
  const upAgent = async () => {
    await agent.writeFile("/tmp/bench-agent.bin", data, { mkdirs: true, fsync: true });
  };
  const downApi = async () => {
    const out = await curl(["-H", "accept: application/octet-stream", `${base}/machines/${id}/files?path=/tmp/bench-api.bin`]);
    if (out !== `200 ${data.length}`) throw new Error(`GET -> ${out}`);
  };
  const downAgent = async () => {
    let n = 0;
    await agent.readFile("/tmp/bench-agent.bin", { onChunk: (c) => (n += c.length) });
    if (n !== data.length) throw new Error(`readFile: ${n} bytes`);
  };
  // Warm-up (JIT, guest page cache, the files exist for the reads). Not measured.
  await upAgent();
  await upApi();
  await downAgent();
  await downApi();

  const s = { upApi: [] as number[], upAgent: [] as number[], downApi: [] as number[], downAgent: [] as number[] };
  for (let i = 0; i < RUNS; i++) {
    const pairs: Array<[keyof typeof s, () => Promise<void>]> = i % 2 === 0
      ? [["upAgent", upAgent], ["upApi", upApi], ["downAgent", downAgent], ["downApi", downApi]]
      : [["upApi", upApi], ["upAgent", upAgent], ["downApi", downApi], ["downAgent", downAgent]];
    for (const [k, fn] of pairs) s[k].push(mibps(data.length, await timed(fn)));
  }

  const r = {
    exec_rounds: ROUNDS,
    exec_api_sync_ms_p50: exec.sync.p50,
    exec_api_sync_ms_p99: exec.sync.p99,
    exec_api_ws_ms_p50: exec.ws.p50,
    exec_api_ws_ms_p99: exec.ws.p99,
    exec_agent_ms_p50: exec.agent.p50,
    exec_agent_ms_p99: exec.agent.p99,
    exec_sync_over_agent_p50: round(exec.sync.p50 / exec.agent.p50, 3),
    exec_ws_over_agent_p50: round(exec.ws.p50 / exec.agent.p50, 3),
    runs: RUNS,
    size_mib: MIB,
    upload_api_mibps: round(median(s.upApi), 1),
    upload_agent_mibps: round(median(s.upAgent), 1),
    upload_api_over_agent: round(median(s.upApi) / median(s.upAgent), 3),
    download_api_mibps: round(median(s.downApi), 1),
    download_agent_mibps: round(median(s.downAgent), 1),
    download_api_over_agent: round(median(s.downApi) / median(s.downAgent), 3),
    target_ratio: TARGET,
    upload_api_mibps_all: s.upApi.map((x) => round(x, 1)),
    upload_agent_mibps_all: s.upAgent.map((x) => round(x, 1)),
    download_api_mibps_all: s.downApi.map((x) => round(x, 1)),
    download_agent_mibps_all: s.downAgent.map((x) => round(x, 1)),
    accel: ACCEL,
  };
  const ok = (x: number) => (x >= TARGET ? "meets" : "BELOW") + ` the ${TARGET * 100} % target`;
  const ms = (x: { p50: number; p99: number }) => `p50 ${x.p50} ms, p99 ${x.p99} ms`;
  const rows: Array<[string, string]> = [
    [`exec \`true\`, API POST /exec (${ROUNDS} rounds)`, ms(exec.sync)],
    [`exec \`true\`, API WebSocket /exec/ws (${ROUNDS} rounds)`, ms(exec.ws)],
    [`exec \`true\`, agent channel (${ROUNDS} rounds)`, ms(exec.agent)],
    ["exec API sync / agent, WebSocket / agent (p50)", `${r.exec_sync_over_agent_p50}x, ${r.exec_ws_over_agent_p50}x`],
    [`upload ${MIB} MiB, API PUT raw, curl (median of ${RUNS})`, `${r.upload_api_mibps} MiB/s`],
    [`upload ${MIB} MiB, agent channel (median of ${RUNS})`, `${r.upload_agent_mibps} MiB/s`],
    ["upload API / agent", `${r.upload_api_over_agent}x (${ok(r.upload_api_over_agent)})`],
    [`download ${MIB} MiB, API GET raw, curl (median of ${RUNS})`, `${r.download_api_mibps} MiB/s`],
    [`download ${MIB} MiB, agent channel (median of ${RUNS})`, `${r.download_agent_mibps} MiB/s`],
    ["download API / agent", `${r.download_api_over_agent}x (${ok(r.download_api_over_agent)})`],
  ];
  printReport("Hyperfleet exec and file transfer benchmark", rows, r);
} finally {
  await daemon.service.live.idle();
  for (const m of await daemon.store.machines.list({ status: ["starting", "running", "stopping"] })) await daemon.service.delete(m.id).catch(() => undefined);
  await daemon.close();
  await rm(dataDir, { recursive: true, force: true });
}
