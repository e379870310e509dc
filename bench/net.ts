/**
 * Network benchmark (issue 10), every figure against a baseline measured in the same run, inside
 * network namespaces this script creates (test/network/netns.ts; nothing touches the root
 * namespace):
 * 1. Throughput host -> guest through an exposed port (127.0.0.1:<host_port>, nft DNAT) vs a direct
 *    connection to the VM's address (B+2i+1), downloading the same file from busybox httpd in the
 *    guest. Runs in pairs of alternating order; the ratio is the median of the pairs' ratios.
 *    Target: exposed >= 0.8x direct.
 * 2. TCP connect latency (until the handshake completes), exposed vs direct, alternating.
 *    Target: exposed p50 within +0.5 ms of direct.
 * 3. VM-to-VM throughput on a private network (busybox wget in one guest from the other's httpd),
 *    as a ratio to the host -> guest direct figure.
 * Human table first, then one JSON line with every figure last.
 *
 * Env: BENCH_NET_MIB (file size, default 32), BENCH_NET_RUNS (throughput runs per path, 10),
 * BENCH_NET_CONNECTS (per path, 300), BENCH_NET_PACE_MS (gap between connects, 20),
 * HYPERFLEET_ASSETS_DIR, HYPERFLEET_ACCEL.
 */
import { request } from "node:http";
import { connect } from "node:net";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { join } from "node:path";
import { pino } from "pino";
import { inTestNetns, netnsSkipReason } from "../test/network/netns.js";
import { loadConfig } from "../src/config/config.js";
import { startDaemon } from "../src/daemon/daemon.js";
import { pct, round } from "./stats.js";

const net = await inTestNetns(import.meta.url);
if (net === null) {
  console.error(`bench:net needs network namespaces: ${netnsSkipReason()}`);
  process.exit(1);
}

const MIB = Number(process.env.BENCH_NET_MIB ?? 32);
const RUNS = Number(process.env.BENCH_NET_RUNS ?? 10);
const CONNECTS = Number(process.env.BENCH_NET_CONNECTS ?? 300);
const PACE_MS = Number(process.env.BENCH_NET_PACE_MS ?? 20);
const KEY = "bench-key-0123456789abcdef";

const median = (xs: number[]) => pct(xs, 50);

const dataDir = await mkdtemp(join(tmpdir(), "hf-bench-net-"));
const config = loadConfig({
  HYPERFLEET_DATA_DIR: dataDir,
  HYPERFLEET_ASSETS_DIR: process.env.HYPERFLEET_ASSETS_DIR ?? "/var/lib/hyperfleet",
  HYPERFLEET_API_KEY: KEY,
  HYPERFLEET_ACCEL: process.env.HYPERFLEET_ACCEL ?? "auto",
  HYPERFLEET_NETWORK_DEFAULT: "on",
  PORT: "0",
  LOG_LEVEL: "silent",
}).unwrap();
const daemon = await startDaemon(config, { logger: pino({ level: "silent" }) });
const headers = { authorization: `Bearer ${KEY}`, "content-type": "application/json" };

async function api<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${daemon.url}${path}`, { method, headers, ...(body !== undefined && { body: JSON.stringify(body) }) });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${method} ${path} -> ${res.status} ${text}`);
  return (text ? JSON.parse(text) : {}) as T;
}

interface MachineJson {
  id: string;
  status: string;
  network: { ip: string };
  exposed_ports: Array<{ host_port: number; host_ip: string }>;
}

async function exec(id: string, cmd: string): Promise<{ stdout: string; duration_ms: number }> {
  const r = await api<{ exit_code: number; stdout: string; stderr: string; duration_ms: number }>("POST", `/machines/${id}/exec`, { command: ["sh", "-c", cmd], timeout: 120 });
  if (r.exit_code !== 0) throw new Error(`'${cmd}' exited ${r.exit_code}: ${r.stderr}`);
  return r;
}

async function runningMachine(name: string, extra: Record<string, unknown>): Promise<MachineJson> {
  const m = await api<MachineJson>("POST", "/machines", { name, vcpu_count: 1, mem_size_mib: 256, start: true, ...extra });
  const w = await api<MachineJson>("GET", `/machines/${m.id}/wait?status=running&timeout=30`);
  if (w.status !== "running") throw new Error(`${name} is ${w.status}`);
  return { ...m, status: w.status };
}

/** Downloads http://host:port/big; MiB/s. */
function download(host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let bytes = 0;
    request({ host, port, path: "/big", agent: false }, (res) => {
      res.on("data", (c: Buffer) => (bytes += c.length));
      res.on("end", () => {
        if (bytes !== MIB * 1024 * 1024) reject(new Error(`got ${bytes} bytes from ${host}:${port}`));
        else resolve(bytes / 1024 / 1024 / ((performance.now() - t0) / 1000));
      });
      res.on("error", reject);
    })
      .on("error", reject)
      .end();
  });
}

/** ms until the TCP handshake completes. */
function connectMs(host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const s = connect({ host, port }, () => {
      const ms = performance.now() - t0;
      s.destroy();
      resolve(ms);
    });
    s.setTimeout(5000, () => s.destroy(new Error(`connect to ${host}:${port} timed out`)));
    s.on("error", reject);
  });
}

const ids: string[] = [];
let exitCode = 0;
try {
  const a = await runningMachine("bench-a", { network: { private_network: "bench" }, exposed_ports: [{ guest_port: 80 }] });
  ids.push(a.id);
  const b = await runningMachine("bench-b", { network: { private_network: "bench" } });
  ids.push(b.id);
  await exec(a.id, `mkdir -p /www && dd if=/dev/zero of=/www/big bs=1M count=${MIB} 2>/dev/null && httpd -h /www -p 80`);
  const exposed = { host: a.exposed_ports[0]!.host_ip, port: a.exposed_ports[0]!.host_port };
  const direct = { host: a.network.ip, port: 80 };

  // Warm both paths (conntrack entries, ARP, the guest's page cache) before measuring.
  await download(exposed.host, exposed.port);
  await download(direct.host, direct.port);

  // Pairs in alternating order; the ratio is the median of the pairs' ratios, so a slow spell of
  // the (shared, emulated) guest CPU hits both sides of a pair instead of one path's median.
  const tput = { exposed: [] as number[], direct: [] as number[], ratios: [] as number[] };
  for (let i = 0; i < RUNS; i++) {
    const first = i % 2 === 0 ? exposed : direct;
    const second = i % 2 === 0 ? direct : exposed;
    const x = await download(first.host, first.port);
    const y = await download(second.host, second.port);
    const [e, d] = i % 2 === 0 ? [x, y] : [y, x];
    tput.exposed.push(e);
    tput.direct.push(d);
    tput.ratios.push(e / d);
  }
  // Paced: busybox httpd accepts with a backlog of 9 and forks per connection, slowly under TCG; back
  // to back, the guest's accept queue overflows and drops SYNs (1 s retransmits), which would measure
  // the guest's fork rate, not the network path.
  const conn = { exposed: [] as number[], direct: [] as number[] };
  for (let i = 0; i < CONNECTS; i++) {
    conn.exposed.push(await connectMs(exposed.host, exposed.port));
    await sleep(PACE_MS);
    conn.direct.push(await connectMs(direct.host, direct.port));
    await sleep(PACE_MS);
  }

  // VM to VM: the exec's own cost (a `true`) is measured alongside and subtracted.
  const vmRuns: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const base = (await exec(b.id, "true")).duration_ms;
    const got = await exec(b.id, `wget -q -O /dev/null http://${a.network.ip}/big`);
    vmRuns.push(MIB / ((got.duration_ms - base) / 1000));
  }

  const f = {
    file_mib: MIB,
    runs: RUNS,
    connects: CONNECTS,
    pace_ms: PACE_MS,
    exposed_mib_s: round(median(tput.exposed), 1),
    direct_mib_s: round(median(tput.direct), 1),
    throughput_ratio: round(median(tput.ratios), 3),
    connect_exposed_p50_ms: round(pct(conn.exposed, 50), 3),
    connect_exposed_p99_ms: round(pct(conn.exposed, 99), 3),
    connect_direct_p50_ms: round(pct(conn.direct, 50), 3),
    connect_direct_p99_ms: round(pct(conn.direct, 99), 3),
    connect_p50_delta_ms: round(pct(conn.exposed, 50) - pct(conn.direct, 50), 3),
    vm_to_vm_mib_s: round(median(vmRuns), 1),
    vm_to_vm_ratio_to_direct: round(median(vmRuns) / median(tput.direct), 3),
  };
  const ok = { throughput: f.throughput_ratio >= 0.8, connect: f.connect_p50_delta_ms <= 0.5 };

  console.log(`bench:net  (${MIB} MiB file, ${RUNS} runs per path, ${CONNECTS} connects per path ${PACE_MS} ms apart)`);
  console.log("");
  console.log("| measure                          | exposed port | direct to VM | ratio / delta | target        |");
  console.log("|----------------------------------|--------------|--------------|---------------|---------------|");
  console.log(`| host -> guest throughput (MiB/s) | ${String(f.exposed_mib_s).padStart(12)} | ${String(f.direct_mib_s).padStart(12)} | ${`${f.throughput_ratio}x`.padStart(13)} | >= 0.8x ${ok.throughput ? "ok " : "MISS"}  |`);
  console.log(`| connect p50 (ms)                 | ${String(f.connect_exposed_p50_ms).padStart(12)} | ${String(f.connect_direct_p50_ms).padStart(12)} | ${`${f.connect_p50_delta_ms >= 0 ? "+" : ""}${f.connect_p50_delta_ms}`.padStart(13)} | <= +0.5 ${ok.connect ? "ok " : "MISS"}  |`);
  console.log(`| connect p99 (ms)                 | ${String(f.connect_exposed_p99_ms).padStart(12)} | ${String(f.connect_direct_p99_ms).padStart(12)} | ${"".padStart(13)} |               |`);
  console.log(`| VM -> VM, private network (MiB/s)| ${String(f.vm_to_vm_mib_s).padStart(12)} | ${String(f.direct_mib_s).padStart(12)} | ${`${f.vm_to_vm_ratio_to_direct}x`.padStart(13)} | (vs direct)   |`);
  console.log("");
  console.log(JSON.stringify({ bench: "net", ...f, targets_met: ok }));
} catch (e) {
  console.error(`bench:net failed: ${(e as Error).stack ?? String(e)}`);
  exitCode = 1;
} finally {
  for (const id of ids) await api("DELETE", `/machines/${id}`).catch(() => undefined);
  await daemon.close();
  await rm(dataDir, { recursive: true, force: true });
}
process.exit(exitCode);
