/**
 * Shared helpers of the API tests: an in-process daemon (app.inject(), no socket) on a temp data
 * dir, and a real daemon child process for restart tests. Guest assets are read from
 * HYPERFLEET_ASSETS_DIR (default /var/lib/hyperfleet, where `npm run setup` puts them), so a temp
 * data dir does not need its own copy.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { LightMyRequestResponse } from "fastify";
import { pino } from "pino";
import { UNDECLARED_CODE } from "../../src/api/errors.js";
import { loadConfig } from "../../src/config/config.js";
import { startDaemon, type Daemon } from "../../src/daemon/daemon.js";

export const KEY = "test-key-0123456789abcdef";
export const AUTH = { authorization: `Bearer ${KEY}` };
export const ASSETS_DIR = process.env.HYPERFLEET_ASSETS_DIR ?? "/var/lib/hyperfleet";
const REPO = fileURLToPath(new URL("../../", import.meta.url));

/** Why VM tests cannot run here, or null when they can. */
export function vmSkipReason(): string | null {
  if (!existsSync(join(ASSETS_DIR, "assets.json"))) return `no guest assets in ${ASSETS_DIR}: run \`npm run setup\``;
  if (!existsSync("/usr/bin/qemu-system-x86_64")) return "qemu-system-x86_64 is not installed";
  return null;
}

/** Environment for a test daemon: temp data dir, shared assets, fixed key, TCG unless told otherwise, no default network. */
export function testEnv(dataDir: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    HYPERFLEET_DATA_DIR: dataDir,
    HYPERFLEET_ASSETS_DIR: ASSETS_DIR,
    HYPERFLEET_API_KEY: KEY,
    HYPERFLEET_ACCEL: process.env.HYPERFLEET_ACCEL ?? "auto",
    LOG_LEVEL: "silent",
    // Machines that boot VMs in tests get no network unless a test asks for one: starting a networked
    // machine brings up namespaces and veths on the host (docs/adr/0008).
    HYPERFLEET_NETWORK_DEFAULT: "off",
    ...extra,
  };
}

export interface TestDaemon {
  daemon: Daemon;
  dataDir: string;
  /** JSON request with the key (unless headers override it); body is sent as JSON when an object. */
  req(method: string, url: string, body?: unknown, headers?: Record<string, string>): Promise<LightMyRequestResponse>;
  /** Deletes every machine (killing its VM), closes the daemon, removes the temp dir. */
  close(): Promise<void>;
}

/** Waits for the daemon's queued work, deletes every machine (killing its VM), then closes it. */
export async function deleteMachinesAndClose(daemon: Daemon): Promise<void> {
  await daemon.service.live.idle();
  for (const m of await daemon.store.machines.list()) {
    if (m.status !== "destroying") await daemon.service.delete(m.id).catch(() => undefined);
  }
  await daemon.close();
}

export async function startTestDaemon(extra: Record<string, string> = {}): Promise<TestDaemon> {
  const dataDir = await mkdtemp(join(tmpdir(), "hf-api-"));
  const config = loadConfig(testEnv(dataDir, extra)).unwrap();
  const undeclared: string[] = [];
  const daemon = await startDaemon(config, { listen: false, logger: pino({ level: process.env.TEST_LOG_LEVEL ?? "warn" }, undeclaredCodeCatcher(undeclared)) });
  const req: TestDaemon["req"] = (method, url, body, headers = {}) =>
    daemon.app.inject({
      method: method as "GET",
      url,
      headers: { ...AUTH, ...(body !== undefined && typeof body === "object" ? { "content-type": "application/json" } : {}), ...headers },
      ...(body !== undefined && { payload: typeof body === "object" ? JSON.stringify(body) : (body as string) }),
    });
  return {
    daemon,
    dataDir,
    req,
    async close() {
      await deleteMachinesAndClose(daemon);
      killLeftoverVmms(dataDir);
      await rm(dataDir, { recursive: true, force: true });
      assertAllCodesDeclared(undeclared);
    },
  };
}

/**
 * A log destination that keeps the lines saying a route answered with a code it does not declare
 * (src/api/route-errors.ts), and prints everything only when TEST_LOG_LEVEL asks for logs.
 */
export function undeclaredCodeCatcher(into: string[]): { write(line: string): void } {
  const print = process.env.TEST_LOG_LEVEL !== undefined;
  return {
    write(line: string) {
      if (line.includes(UNDECLARED_CODE)) into.push(line);
      if (print) process.stdout.write(line);
    },
  };
}

/** Fails the test file whose daemon answered with an undeclared code: the route's documentation is wrong. */
export function assertAllCodesDeclared(undeclared: readonly string[]): void {
  if (undeclared.length === 0) return;
  const seen = undeclared.map((l) => JSON.parse(l) as { route?: string; code?: string }).map((l) => `${l.route}: ${l.code}`);
  throw new Error(`routes answered with codes they do not declare (add them to the route's routeErrors): ${[...new Set(seen)].join("; ")}`);
}

/** Alive and not a zombie (an orphaned QEMU is reparented; kill(pid, 0) succeeds on zombies). */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** Live QEMU processes whose pidfile is in a run dir under `base` (exact path match), by machine id. */
export function qemusUnder(base: string): Array<{ pid: number; id: string }> {
  const found: Array<{ pid: number; id: string }> = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
    } catch {
      continue;
    }
    const i = argv.indexOf("-pidfile");
    const pidFile = i >= 0 ? argv[i + 1] : undefined;
    if (!argv[0]?.includes("qemu-system") || !pidFile?.startsWith(base + "/") || !pidFile.endsWith("/qemu.pid")) continue;
    const id = pidFile.slice(base.length + 1, -"/qemu.pid".length);
    if (id.includes("/") || !alive(Number(entry))) continue;
    found.push({ pid: Number(entry), id });
  }
  return found;
}

/**
 * Last resort after a failed test: SIGKILL every QEMU whose pidfile is under dataDir (checked against
 * its command line), and every QEMU whose command line points into dataDir's run dirs, by pid.
 */
export function killLeftoverVmms(dataDir: string): number[] {
  const killed: number[] = [];
  for (const base of [join(dataDir, "machines")]) {
    if (!existsSync(base)) continue;
    for (const id of readdirSync(base)) {
      const pidFile = join(base, id, "qemu.pid");
      if (!existsSync(pidFile)) continue;
      const pid = Number(readFileSync(pidFile, "utf8").trim());
      if (!Number.isInteger(pid) || pid <= 1) continue;
      try {
        // Only kill it if it really is that VM's QEMU (the pid may have been reused).
        if (readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(id)) {
          process.kill(pid, "SIGKILL");
          killed.push(pid);
        }
      } catch {
        /* already gone */
      }
    }
  }
  // A QEMU whose run dir lost its pidfile (a daemon killed mid-boot, a removed run dir) is found by
  // its command line instead.
  for (const q of qemusUnder(join(dataDir, "machines"))) {
    try {
      process.kill(q.pid, "SIGKILL");
      killed.push(q.pid);
    } catch {
      /* already gone */
    }
  }
  return killed;
}

export function json<T = Record<string, unknown>>(r: LightMyRequestResponse): T {
  return JSON.parse(r.body) as T;
}

/** A daemon child process (`node --import tsx src/daemon/main.ts`) on a loopback port chosen by the OS. */
export interface ChildDaemon {
  proc: ChildProcess;
  pid: number;
  url: string;
  output: () => string;
  /** Resolves with the exit code or signal once the process is gone. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  fetch(method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }>;
}

export async function spawnDaemon(dataDir: string, extra: Record<string, string> = {}): Promise<ChildDaemon> {
  const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", ...testEnv(dataDir, { PORT: "0", LOG_LEVEL: "info", ...extra }) };
  const proc = spawn(process.execPath, ["--import", "tsx", "src/daemon/main.ts"], { cwd: REPO, env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  proc.stdout.on("data", (d: Buffer) => (out += d.toString()));
  proc.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const url = await new Promise<string>((resolve, reject) => {
    // A daemon that never says it listens is killed: left alive, its pipes would keep the test
    // process from ever exiting.
    const timer = setTimeout(() => {
      proc.kill("SIGKILL");
      reject(new Error(`daemon did not start in 60 s:\n${out}`));
    }, 60_000);
    const onData = () => {
      const m = /"url":"(http:\/\/127\.0\.0\.1:\d+)"[^\n]*"msg":"hyperfleet listening"/.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        proc.stdout.off("data", onData);
        resolve(m[1]);
      }
    };
    proc.stdout.on("data", onData);
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`daemon exited (${code ?? signal}) before listening:\n${out}`));
    });
  });
  return {
    proc,
    pid: proc.pid!,
    url,
    output: () => out,
    exited,
    async fetch(method, path, body) {
      const res = await fetch(`${url}${path}`, {
        method,
        headers: { ...AUTH, ...(body !== undefined && { "content-type": "application/json" }) },
        ...(body !== undefined && { body: JSON.stringify(body) }),
      });
      const text = await res.text();
      return { status: res.status, body: text === "" ? {} : (JSON.parse(text) as Record<string, unknown>) };
    },
  };
}

/**
 * The end of a test with child daemons on `dataDir`: each still running is SIGKILLed and waited
 * for, every VMM of the data dir is killed by pid, and the dir goes.
 */
export async function endDaemons(daemons: readonly ChildDaemon[], dataDir: string): Promise<void> {
  for (const c of daemons) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill("SIGKILL");
  await Promise.all(daemons.map((c) => c.exited));
  killLeftoverVmms(dataDir);
  await rm(dataDir, { recursive: true, force: true });
}

/** Polls `fn` until it returns a truthy value or `ms` pass. */
export async function until<T>(fn: () => Promise<T | undefined | null | false>, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
