/**
 * Snapshot benchmark (issue 11), every figure against a baseline measured in the same run:
 * 1. create-from-snapshot -> first exec through the HTTP API, p50/p99 over BENCH_SNAP_CLONES (50),
 *    against a cold create -> first exec (ratio) and against a bare `qemu-system-x86_64` restore of
 *    the same snapshot started by hand with our argv builder, spawn -> agent -> the same first exec
 *    (the floor, ratio);
 * 2. PSS per idle clone with all of them alive, against the idle PSS of a cold-booted VM;
 * 3. clones per second created through the API (concurrent creates until all answer an exec);
 * 4. pause/resume and suspend/resume latency through the API;
 * 5. warm template: a machine from an image restored from its template vs its cold first boot.
 * Where the costs go (docs/snapshots.md, "Costs"): a clone's PSS by part (bench/smaps.ts), QEMU's
 * CPU time per clone up to its first exec and the daemon's per burst clone (their sum bounds the
 * clone rate on this host's cores), and the TCG code a bare restore translates up to its agent's
 * HELLO and up to the end of its first exec (QMP `info jit`, in one extra untimed bare restore).
 * Network off (the root namespace stays untouched); TCG unless HYPERFLEET_ACCEL says otherwise.
 * Human table first, then one JSON line with every figure.
 *
 * Env: BENCH_SNAP_CLONES (50), BENCH_SNAP_COLD (3), BENCH_SNAP_FLOOR (10), BENCH_SNAP_BURST (50),
 * HYPERFLEET_ASSETS_DIR (/var/lib/hyperfleet), HYPERFLEET_ACCEL (auto).
 */
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { loadConfig } from "../src/config/config.js";
import { startDaemon } from "../src/daemon/daemon.js";
import { AgentClient } from "../src/agent/client.js";
import { buildQemuArgv } from "../src/vmm/qemu/argv.js";
import { qemuPaths } from "../src/vmm/qemu/driver.js";
import { vmmEnv } from "../src/vmm/process.js";
import { QmpClient } from "../src/vmm/qemu/qmp.js";
import { migrateFromFile, setIgnoreShared } from "../src/vmm/qemu/migration.js";
import { createOverlay } from "../src/vmm/disks.js";
import { buildVmSpec } from "../src/vmm/spec.js";
import { hostTscKhz } from "../src/vmm/host.js";
import { connect } from "node:net";
import { existsSync } from "node:fs";
import { buildBusyboxLayout, push, workDir } from "../test/images/fixtures.js";
import { startRegistry } from "../test/images/registry.js";
import { pct, round } from "./stats.js";
import { printReport } from "./report.js";
import { pssParts, type PssParts } from "./smaps.js";

const CLONES = Number(process.env.BENCH_SNAP_CLONES ?? 50);
const COLD = Number(process.env.BENCH_SNAP_COLD ?? 3);
const FLOOR = Number(process.env.BENCH_SNAP_FLOOR ?? 10);
const BURST = Number(process.env.BENCH_SNAP_BURST ?? 50);
const KEY = "bench-key-0123456789abcdef";
const ASSETS = process.env.HYPERFLEET_ASSETS_DIR ?? "/var/lib/hyperfleet";

const p50 = (xs: number[]) => pct(xs, 50);

const registry = await startRegistry();
const fixtures = await workDir();
const image = `${registry.host}/bench/busybox:1`;
await push(await buildBusyboxLayout(fixtures), "bb", image);

const dataDir = await mkdtemp(join(tmpdir(), "hf-bench-snap-"));
const config = loadConfig({
  HYPERFLEET_DATA_DIR: dataDir,
  HYPERFLEET_ASSETS_DIR: ASSETS,
  HYPERFLEET_API_KEY: KEY,
  HYPERFLEET_ACCEL: process.env.HYPERFLEET_ACCEL ?? "auto",
  HYPERFLEET_NETWORK_DEFAULT: "off",
  HYPERFLEET_INSECURE_REGISTRIES: registry.host,
  HYPERFLEET_MAX_VCPUS: "1024",
  HYPERFLEET_MAX_MEMORY_MIB: String(64 * 1024),
  PORT: "0",
  LOG_LEVEL: "silent",
}).unwrap();
const daemon = await startDaemon(config, { logger: pino({ level: "silent" }) });
const base = daemon.url!;
const headers = { authorization: `Bearer ${KEY}`, "content-type": "application/json" };

type Json = Record<string, unknown>;
async function api(method: string, path: string, body?: unknown): Promise<Json> {
  const res = await fetch(`${base}${path}`, { method, headers, ...(body !== undefined && { body: JSON.stringify(body) }) });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${method} ${path} -> ${res.status} ${text}`);
  return text ? (JSON.parse(text) as Json) : {};
}

/** POST /machines (started) -> running -> exec `true`: ms, and the machine id. */
async function createToExec(body: Json): Promise<{ ms: number; id: string }> {
  const t0 = performance.now();
  const m = await api("POST", "/machines", { ...body, start: true });
  const id = String(m.id);
  await api("GET", `/machines/${id}/wait?status=running&timeout=30`);
  const r = await api("POST", `/machines/${id}/exec`, { command: ["sh", "-c", ":"] });
  if (r.exit_code !== 0) throw new Error(`exec: ${JSON.stringify(r)}`);
  return { ms: performance.now() - t0, id };
}

async function pssKib(pid: number): Promise<number> {
  const t = await readFile(`/proc/${pid}/smaps_rollup`, "utf8");
  return Number(/^Pss:\s+(\d+)/m.exec(t)?.[1] ?? NaN);
}

const pidOf = async (id: string) => Number((await api("GET", `/machines/${id}`)).pid);
/** CPU time (user + system) a process has used so far, in ms. */
async function cpuMs(pid: number): Promise<number> {
  const f = (await readFile(`/proc/${pid}/stat`, "utf8")).split(") ")[1]!.split(" ");
  return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
}
/** USER_HZ, the unit of /proc/<pid>/stat times: 100 on x86 and arm Linux (sysconf is not reachable from Node). */
const CLK_TCK = 100;
/** QMP `info jit`: KiB of translated code and the count of translation blocks. */
async function jitInfo(qmp: QmpClient): Promise<{ kib: number; tbs: number }> {
  const s = await qmp.execute<string>("human-monitor-command", { "command-line": "info jit" });
  return { kib: Math.round(Number(/gen code size\s+(\d+)/.exec(s)?.[1] ?? NaN) / 1024), tbs: Number(/TB count\s+(\d+)/.exec(s)?.[1] ?? NaN) };
}
const settle = () => new Promise((r) => setTimeout(r, 3_000));

/**
 * The floor: QEMU started by hand from the snapshot's files with our argv builder (no daemon, no
 * store, no identity, the disk made beforehand), spawn -> incoming migration -> cont -> agent HELLO
 * -> first exec.
 */
async function bareRestore(vm: { stateFile: string; memoryFile: string; disk: string }, i: number, jit?: Array<{ kib: number; tbs: number }>): Promise<number> {
  const runDir = join(dataDir, "floor", String(i));
  await mkdir(runDir, { recursive: true });
  await createOverlay(vm.disk, join(runDir, "rootfs.qcow2"), "qcow2");
  const src = (await api("GET", `/machines/${sourceId}`)) as { kernel_image_path: string; initrd_path: string | null; kernel_args: string | null };
  const spec = buildVmSpec({
    id: `vm_floor${i}`, vcpuCount: 1, memSizeMib: 256,
    boot: { kernelImagePath: src.kernel_image_path, initrdPath: src.initrd_path, kernelArgs: src.kernel_args },
    rootDisk: { path: join(runDir, "rootfs.qcow2"), format: "qcow2" }, runDir, tscKhz: hostTscKhz(),
  });
  const paths = qemuPaths(runDir);
  const accel = (await readFile(join(ASSETS, "accel.json"), "utf8").then((s) => (JSON.parse(s) as { accel: "kvm" | "tcg" }).accel).catch(() => "tcg" as const));
  const argv = buildQemuArgv({ spec, accel, paths, memory: { kind: "file", path: vm.memoryFile }, incoming: true });
  const t0 = performance.now();
  const child = spawn("qemu-system-x86_64", argv, { stdio: "ignore", env: vmmEnv() });
  try {
    while (!existsSync(paths.qmpSocket) || !existsSync(paths.agentSocket)) await new Promise((r) => setTimeout(r, 1));
    const qmp = await QmpClient.connect(paths.qmpSocket, 5_000);
    await setIgnoreShared(qmp, true);
    await migrateFromFile(qmp, vm.stateFile);
    await qmp.execute("cont");
    const sock = connect(paths.agentSocket);
    await new Promise((res, rej) => sock.once("connect", res).once("error", rej));
    const agent = await AgentClient.connect(sock, { timeoutMs: 10_000 });
    if (jit) jit.push(await jitInfo(qmp));
    // The same first exec as through the API: its first run in a restored guest is most of the cost under TCG.
    const r = await agent.exec(["sh", "-c", ":"]);
    const ms = performance.now() - t0;
    if (r.exitCode !== 0) throw new Error(`bare restore: exec exited ${r.exitCode}`);
    if (jit) jit.push(await jitInfo(qmp));
    agent.close();
    qmp.close();
    return ms;
  } finally {
    child.kill("SIGKILL");
    await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(null) : child.once("exit", r)));
  }
}

let sourceId = "";
const out: Json = {};
try {
  // Warm-up (accel probe, page cache, JIT): one cold machine, deleted.
  await api("DELETE", `/machines/${(await createToExec({ name: "warm", vcpu_count: 1, mem_size_mib: 256 })).id}`);

  const coldMs: number[] = [];
  const coldPss: number[] = [];
  for (let i = 0; i < COLD; i++) {
    const c = await createToExec({ name: `cold-${i}`, vcpu_count: 1, mem_size_mib: 256 });
    coldMs.push(c.ms);
    if (i < COLD - 1) {
      await settle();
      coldPss.push(await pssKib(await pidOf(c.id)));
      await api("DELETE", `/machines/${c.id}`);
    } else sourceId = c.id;
  }
  await settle();
  coldPss.push(await pssKib(await pidOf(sourceId)));

  const tSnap = performance.now();
  const snap = await api("POST", `/machines/${sourceId}/snapshots`);
  const snapshotMs = performance.now() - tSnap;
  const snapRec = await daemon.store.snapshots.get(String(snap.id));
  const files = { stateFile: snapRec!.vm.stateFile, memoryFile: snapRec!.vm.memoryFile!, disk: snapRec!.vm.disk!.path };

  const floorMs: number[] = [];
  for (let i = 0; i < FLOOR; i++) floorMs.push(await bareRestore(files, i));
  const jit: Array<{ kib: number; tbs: number }> = [];
  await bareRestore(files, FLOOR, jit);

  const cloneMs: number[] = [];
  const cloneCpu: number[] = [];
  const clones: string[] = [];
  for (let i = 0; i < CLONES; i++) {
    const c = await createToExec({ name: `clone-${i}`, snapshot: snap.id });
    cloneMs.push(c.ms);
    cloneCpu.push(await cpuMs(await pidOf(c.id)));
    clones.push(c.id);
  }
  await settle();
  const clonePss: number[] = [];
  const parts: PssParts[] = [];
  for (const id of clones) {
    const pid = await pidOf(id);
    clonePss.push(await pssKib(pid));
    parts.push(pssParts(await readFile(`/proc/${pid}/smaps`, "utf8"), files.memoryFile));
  }
  const partMib = (k: keyof PssParts) => round(parts.reduce((a, p) => a + p[k], 0) / parts.length / 1024, 1);
  for (const id of clones) await api("DELETE", `/machines/${id}`);

  const tBurst = performance.now();
  const cpu0 = process.cpuUsage();
  const burst = await Promise.all(Array.from({ length: BURST }, (_, i) => createToExec({ name: `burst-${i}`, snapshot: snap.id })));
  const burstS = (performance.now() - tBurst) / 1000;
  const cpu = process.cpuUsage(cpu0);
  // The daemon runs in this process: its CPU and this client's, per clone.
  const daemonCpuMs = (cpu.user + cpu.system) / 1000 / BURST;
  for (const c of burst) await api("DELETE", `/machines/${c.id}`);

  const pauseMs: number[] = [];
  const resumeMs: number[] = [];
  for (let i = 0; i < 10; i++) {
    let t = performance.now();
    await api("POST", `/machines/${sourceId}/pause`);
    pauseMs.push(performance.now() - t);
    t = performance.now();
    await api("POST", `/machines/${sourceId}/resume`);
    resumeMs.push(performance.now() - t);
  }
  const suspendMs: number[] = [];
  const unsuspendMs: number[] = [];
  for (let i = 0; i < 5; i++) {
    let t = performance.now();
    await api("POST", `/machines/${sourceId}/suspend`);
    suspendMs.push(performance.now() - t);
    t = performance.now();
    await api("POST", `/machines/${sourceId}/resume`);
    unsuspendMs.push(performance.now() - t);
  }

  // Warm templates: the first machine of the image boots cold (and is captured), the next ones restore.
  const imageCold = await createToExec({ name: "img-0", vcpu_count: 1, mem_size_mib: 256, image });
  const imageWarm: number[] = [];
  for (let i = 1; i <= 5; i++) {
    const w = await createToExec({ name: `img-${i}`, vcpu_count: 1, mem_size_mib: 256, image });
    imageWarm.push(w.ms);
    await api("DELETE", `/machines/${w.id}`);
  }

  Object.assign(out, {
    clones: CLONES,
    clone_create_to_exec_ms_p50: round(p50(cloneMs), 1),
    clone_create_to_exec_ms_p99: round(pct(cloneMs, 99), 1),
    cold_create_to_exec_ms_p50: round(p50(coldMs), 1),
    cold_over_clone_ratio: round(p50(coldMs) / p50(cloneMs), 2),
    bare_restore_ms_p50: round(p50(floorMs), 1),
    clone_over_bare_ratio: round(p50(cloneMs) / p50(floorMs), 2),
    snapshot_ms: round(snapshotMs, 1),
    snapshot_size_bytes: Number(snap.size_bytes),
    clone_pss_mib_mean: round(clonePss.reduce((a, b) => a + b, 0) / clonePss.length / 1024, 1),
    cold_pss_mib_p50: round(p50(coldPss) / 1024, 1),
    cold_over_clone_pss_ratio: round(p50(coldPss) / (clonePss.reduce((a, b) => a + b, 0) / clonePss.length), 2),
    clone_pss_tcg_code_mib: partMib("tcgCode"),
    clone_pss_guest_ram_mib: partMib("guestRam"),
    clone_pss_guest_ram_written_mib: partMib("guestRamPrivate"),
    clone_pss_qemu_anon_mib: partMib("anon"),
    clone_pss_binaries_mib: partMib("binaries"),
    clones_per_second: round(BURST / burstS, 2),
    clone_qemu_cpu_ms_p50: round(p50(cloneCpu), 1),
    daemon_cpu_ms_per_clone: round(daemonCpuMs, 1),
    cores: availableParallelism(),
    clones_per_second_cpu_bound: round((availableParallelism() * 1000) / (p50(cloneCpu) + daemonCpuMs), 1),
    restore_tcg_code_kib_at_hello: jit[0]?.kib,
    restore_tcg_tbs_at_hello: jit[0]?.tbs,
    restore_tcg_code_kib_after_exec: jit[1]?.kib,
    restore_tcg_tbs_after_exec: jit[1]?.tbs,
    burst: BURST,
    pause_ms_p50: round(p50(pauseMs), 1),
    resume_ms_p50: round(p50(resumeMs), 1),
    suspend_ms_p50: round(p50(suspendMs), 1),
    resume_suspended_ms_p50: round(p50(unsuspendMs), 1),
    image_cold_first_boot_ms: round(imageCold.ms, 1),
    image_warm_template_ms_p50: round(p50(imageWarm), 1),
    image_cold_over_warm_ratio: round(imageCold.ms / p50(imageWarm), 2),
  });
  const rows: Array<[string, string]> = [
    [`create from snapshot -> first exec, API (p50 / p99 of ${CLONES})`, `${out.clone_create_to_exec_ms_p50} / ${out.clone_create_to_exec_ms_p99} ms`],
    [`cold create -> first exec, API (p50 of ${COLD})`, `${out.cold_create_to_exec_ms_p50} ms (${out.cold_over_clone_ratio}x the clone)`],
    [`bare qemu restore by hand -> first exec (p50 of ${FLOOR}), the floor`, `${out.bare_restore_ms_p50} ms (clone is ${out.clone_over_bare_ratio}x)`],
    ["snapshot of a running machine (API)", `${out.snapshot_ms} ms, ${round(Number(snap.size_bytes) / 2 ** 20, 1)} MiB on disk`],
    [`PSS per idle clone, ${CLONES} alive (mean)`, `${out.clone_pss_mib_mean} MiB (cold-booted VM: ${out.cold_pss_mib_p50} MiB, ${out.cold_over_clone_pss_ratio}x)`],
    ["  of which: TCG code / guest RAM (written by the clone) / QEMU heap etc. / binaries", `${out.clone_pss_tcg_code_mib} / ${out.clone_pss_guest_ram_mib} (${out.clone_pss_guest_ram_written_mib}) / ${out.clone_pss_qemu_anon_mib} / ${out.clone_pss_binaries_mib} MiB`],
    ["TCG code a bare restore translates: to HELLO / to end of first exec", `${out.restore_tcg_code_kib_at_hello} / ${out.restore_tcg_code_kib_after_exec} KiB (${out.restore_tcg_tbs_at_hello} / ${out.restore_tcg_tbs_after_exec} blocks)`],
    [`clones per second, ${BURST} concurrent creates through the API`, `${out.clones_per_second}/s`],
    [`  CPU per clone: QEMU to first exec (p50) + daemon and client (burst)`, `${out.clone_qemu_cpu_ms_p50} + ${out.daemon_cpu_ms_per_clone} ms: at most ${out.clones_per_second_cpu_bound}/s on ${out.cores} cores`],
    ["pause / resume (API, p50 of 10)", `${out.pause_ms_p50} / ${out.resume_ms_p50} ms`],
    ["suspend / resume from disk (API, p50 of 5)", `${out.suspend_ms_p50} / ${out.resume_suspended_ms_p50} ms`],
    ["image machine: cold first boot vs warm template (p50 of 5)", `${out.image_cold_first_boot_ms} vs ${out.image_warm_template_ms_p50} ms (${out.image_cold_over_warm_ratio}x)`],
  ];
  printReport("Hyperfleet snapshot benchmark", rows, out);
} finally {
  await daemon.service.live.idle();
  for (const m of await daemon.store.machines.list()) if (m.status !== "destroying") await daemon.service.delete(m.id).catch(() => undefined);
  await daemon.close();
  await rm(dataDir, { recursive: true, force: true });
  await registry.stop();
  await rm(fixtures, { recursive: true, force: true });
}
