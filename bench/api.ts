/**
 * API benchmark, measured against baselines taken in the same run:
 * 1. create + start + first exec through the HTTP API (real socket on loopback) vs the same
 *    through the library directly (`new Machine`, `start`, `exec`), same driver and guest assets.
 *    Runs alternate API/library so drift hits both; one VM at a time.
 * 2. GET /machines with 1,000 machines in the store: p50/p99 latency, and POST /machines latency
 *    while filling the store.
 * Human table first, then one JSON line with every figure last.
 *
 * Env: BENCH_API_RUNS (default 5), BENCH_API_MACHINES (1000), BENCH_API_LISTS (300),
 * HYPERFLEET_ASSETS_DIR (default /var/lib/hyperfleet), HYPERFLEET_ACCEL (auto).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { loadConfig } from "../src/config/config.js";
import { startDaemon } from "../src/daemon/daemon.js";
import { Machine } from "../src/embed/machine.js";
import { QemuDriver } from "../src/vmm/qemu/driver.js";
import { median, pct, round } from "./stats.js";
import { printReport } from "./report.js";

const RUNS = Number(process.env.BENCH_API_RUNS ?? 5);
const MACHINES = Number(process.env.BENCH_API_MACHINES ?? 1000);
const LISTS = Number(process.env.BENCH_API_LISTS ?? 300);
const KEY = "bench-key-0123456789abcdef";
const ASSETS = process.env.HYPERFLEET_ASSETS_DIR ?? "/var/lib/hyperfleet";
const ACCEL = process.env.HYPERFLEET_ACCEL ?? "auto";


const dataDir = await mkdtemp(join(tmpdir(), "hf-bench-api-"));
const config = loadConfig({
  HYPERFLEET_DATA_DIR: dataDir,
  HYPERFLEET_ASSETS_DIR: ASSETS,
  HYPERFLEET_API_KEY: KEY,
  HYPERFLEET_ACCEL: ACCEL,
  PORT: "0",
  LOG_LEVEL: "silent",
}).unwrap();
const daemon = await startDaemon(config, { logger: pino({ level: "silent" }) });
const base = daemon.url!;
const headers = { authorization: `Bearer ${KEY}`, "content-type": "application/json" };

async function api(method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${base}${path}`, { method, headers, ...(body !== undefined && { body: JSON.stringify(body) }) });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${method} ${path} -> ${res.status} ${text}`);
  return text ? (JSON.parse(text) as Record<string, unknown>) : {};
}

/** create + start + wait + first exec through HTTP; returns ms. */
async function viaApi(i: number): Promise<number> {
  const t0 = performance.now();
  const m = await api("POST", "/machines", { name: `bench-api-${i}`, vcpu_count: 1, mem_size_mib: 256, start: true });
  await api("GET", `/machines/${String(m.id)}/wait?status=running&timeout=30`);
  const r = await api("POST", `/machines/${String(m.id)}/exec`, { command: ["true"] });
  const ms = performance.now() - t0;
  if (r.exit_code !== 0) throw new Error(`exec via API: ${JSON.stringify(r)}`);
  await api("DELETE", `/machines/${String(m.id)}`);
  return ms;
}

/** The same through the library as a library user writes it: defaults for everything but where. */
async function viaLibrary(i: number): Promise<number> {
  const id = `vm_LIB${String(i + 1).padStart(23, "0")}`;
  const driver = ACCEL === "auto" ? {} : { driver: new QemuDriver({ accel: ACCEL as "kvm" | "tcg" }) };
  const t0 = performance.now();
  const m = new Machine({ id, vcpuCount: 1, memSizeMib: 256, dataDir: ASSETS, runDir: join(dataDir, "lib", id), ...driver });
  (await m.start()).unwrap();
  const r = (await m.exec(["true"])).unwrap();
  const ms = performance.now() - t0;
  if (r.exitCode !== 0) throw new Error(`exec via library: ${JSON.stringify(r)}`);
  await m.destroy();
  return ms;
}

try {
  // Warm-up: driver choice (KVM probe, cached), page cache, JIT. Not measured.
  await viaLibrary(-1);
  await viaApi(-1);

  const apiMs: number[] = [];
  const libMs: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    if (i % 2 === 0) {
      libMs.push(await viaLibrary(i));
      apiMs.push(await viaApi(i));
    } else {
      apiMs.push(await viaApi(i));
      libMs.push(await viaLibrary(i));
    }
  }

  const createMs: number[] = [];
  for (let i = 0; i < MACHINES; i++) {
    const t0 = performance.now();
    await api("POST", "/machines", { name: `bulk-${i}`, vcpu_count: 1, mem_size_mib: 256, metadata: { i: String(i) } });
    createMs.push(performance.now() - t0);
  }
  const listMs: number[] = [];
  let count = 0;
  for (let i = 0; i < LISTS + 20; i++) {
    const t0 = performance.now();
    const res = await fetch(`${base}/machines`, { headers });
    const body = (await res.json()) as unknown[];
    if (i >= 20) listMs.push(performance.now() - t0); // the first 20 warm up
    count = body.length;
  }
  const filteredMs: number[] = [];
  for (let i = 0; i < 100; i++) {
    const t0 = performance.now();
    await (await fetch(`${base}/machines?status=running`, { headers })).json();
    filteredMs.push(performance.now() - t0);
  }

  const r = {
    runs: RUNS,
    api_create_start_exec_ms_p50: round(median(apiMs)),
    lib_create_start_exec_ms_p50: round(median(libMs)),
    api_over_lib_ratio: round(median(apiMs) / median(libMs), 3),
    api_overhead_ms_p50: round(median(apiMs) - median(libMs)),
    api_create_start_exec_ms: apiMs.map((x) => round(x)),
    lib_create_start_exec_ms: libMs.map((x) => round(x)),
    machines_in_store: count,
    list_all_ms_p50: round(median(listMs)),
    list_all_ms_p99: round(pct(listMs, 99)),
    list_running_ms_p50: round(median(filteredMs)),
    list_running_ms_p99: round(pct(filteredMs, 99)),
    create_record_ms_p50: round(median(createMs)),
    create_record_ms_p99: round(pct(createMs, 99)),
    list_samples: listMs.length,
    accel: ACCEL,
  };

  const rows: Array<[string, string]> = [
    [`create+start+first exec, API (p50 of ${RUNS})`, `${r.api_create_start_exec_ms_p50} ms`],
    [`create+start+first exec, library (p50 of ${RUNS})`, `${r.lib_create_start_exec_ms_p50} ms`],
    ["API / library", `${r.api_over_lib_ratio}x (${r.api_overhead_ms_p50 >= 0 ? "+" : ""}${r.api_overhead_ms_p50} ms)`],
    [`GET /machines, ${count} machines (p50 / p99 of ${listMs.length})`, `${r.list_all_ms_p50} / ${r.list_all_ms_p99} ms`],
    [`GET /machines?status=running (p50 / p99 of 100)`, `${r.list_running_ms_p50} / ${r.list_running_ms_p99} ms`],
    [`POST /machines, record only (p50 / p99 of ${MACHINES})`, `${r.create_record_ms_p50} / ${r.create_record_ms_p99} ms`],
  ];
  printReport("Hyperfleet API benchmark", rows, r);
} finally {
  await daemon.service.live.idle();
  for (const m of await daemon.store.machines.list({ status: ["starting", "running", "stopping"] })) await daemon.service.delete(m.id).catch(() => undefined);
  await daemon.close();
  await rm(dataDir, { recursive: true, force: true });
}
