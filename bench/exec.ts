/**
 * Exec and file transfer benchmark (issue 13, `npm run bench:exec`), each through the HTTP API
 * (real socket on loopback) against the agent channel alone (the daemon's own AgentClient of the
 * same VM), measured in the same run, alternating which goes first so drift hits both:
 * 1. exec round trip, sync and WebSocket: SLOT, to be added with streaming exec (see below).
 * 2. upload and download MiB/s: PUT /files (raw body) and GET /files (Accept:
 *    application/octet-stream, streamed) with curl, a client in its own process as users have
 *    (an in-process fetch would compete with the daemon for its event loop), vs
 *    AgentClient.writeFile (with fsync, as the API's) and readFile. Target: the API at >= 70 % of
 *    the agent channel. The host is shared: medians of alternating runs.
 * Human table first, then one JSON line with every figure last.
 *
 * Env: BENCH_EXEC_RUNS (default 5), BENCH_EXEC_MIB (64), HYPERFLEET_ASSETS_DIR (default
 * /var/lib/hyperfleet), HYPERFLEET_ACCEL (auto).
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import type { AgentClient } from "../src/agent/client.js";
import { loadConfig } from "../src/config/config.js";
import { startDaemon } from "../src/daemon/daemon.js";
import { median, round } from "./stats.js";

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

  // --- 1. exec round trip (sync + WebSocket vs agent channel): slot for the exec-stream work. ---

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
  const rows: Array<[string, string]> = [
    [`upload ${MIB} MiB, API PUT raw, curl (median of ${RUNS})`, `${r.upload_api_mibps} MiB/s`],
    [`upload ${MIB} MiB, agent channel (median of ${RUNS})`, `${r.upload_agent_mibps} MiB/s`],
    ["upload API / agent", `${r.upload_api_over_agent}x (${ok(r.upload_api_over_agent)})`],
    [`download ${MIB} MiB, API GET raw, curl (median of ${RUNS})`, `${r.download_api_mibps} MiB/s`],
    [`download ${MIB} MiB, agent channel (median of ${RUNS})`, `${r.download_agent_mibps} MiB/s`],
    ["download API / agent", `${r.download_api_over_agent}x (${ok(r.download_api_over_agent)})`],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  console.log("Hyperfleet exec and file transfer benchmark");
  for (const [k, v] of rows) console.log(`  ${k.padEnd(w)}  ${v}`);
  console.log(JSON.stringify(r));
} finally {
  await daemon.service.live.idle();
  for (const m of await daemon.store.machines.list({ status: ["starting", "running", "stopping"] })) await daemon.service.delete(m.id).catch(() => undefined);
  await daemon.close();
  await rm(dataDir, { recursive: true, force: true });
}
