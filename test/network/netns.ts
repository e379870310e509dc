/**
 * Runs a whole test file inside network namespaces the file itself creates, so nothing it does
 * (the daemon's veths, nft tables, sysctls, NAT, the guests' traffic) touches the root namespace.
 *
 * Use at the top of a test file, before any test is declared:
 *
 *     const net = await inTestNetns(import.meta.url, { outside: true });
 *
 * The first run of the file (the "outer" process, the one node --test started) creates
 * `hft-<random>-host` (and `-out` with `outside`: see topology.ts), re-executes the same file with
 * the same node flags under `ip netns exec hft-<random>-host`, inheriting stdio, and waits. The
 * inner run's test reports go to node --test through that same stdout (NODE_TEST_CONTEXT is
 * inherited), so pass/fail and the exit code reach the runner as if nothing happened. The outer
 * never returns: once the inner exits it kills every process left in the inner's mount namespace
 * (only processes this file started live there: `ip netns exec` gives the inner its own), deletes
 * its namespaces, and exits with the inner's code (1 if cleaning up failed).
 *
 * In the inner run it returns the names (after checking that this process really is in the host
 * namespace), or null with `netnsSkipReason()` when the machine cannot do this (not root, no ip).
 * The daemon under test starts inside the inner run and so in the host namespace; the namespaces
 * it creates itself (`hf-*`) are its own to delete, and each test asserts that it did.
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, readlinkSync } from "node:fs";
import { after } from "node:test";
import { fileURLToPath } from "node:url";
import { buildPlan, netNames, type TestNetNames } from "./topology.js";

export const IP = "/usr/sbin/ip";
/** Set in the inner run: the run name (`hft-<random>`). */
const RUN_ENV = "HFT_NETNS_RUN";
const OUTSIDE_ENV = "HFT_NETNS_OUTSIDE";
const EXIT_GRACE_MS = 30_000;

export interface TestNet {
  names: TestNetNames;
  /** Whether the outside namespace exists (see topology.ts). */
  outside: boolean;
}

export function netnsSkipReason(): string | null {
  if (process.getuid?.() !== 0) return "needs root (network namespaces)";
  if (!existsSync(IP)) return `${IP} is not installed (iproute2)`;
  return null;
}

export async function inTestNetns(moduleUrl: string, opts: { outside?: boolean } = {}): Promise<TestNet | null> {
  if (netnsSkipReason()) return null;
  const run = process.env[RUN_ENV];
  if (run !== undefined) return innerContext(run);
  return runOuter(fileURLToPath(moduleUrl), opts.outside ?? false);
}

function innerContext(run: string): TestNet {
  const names = netNames(run);
  // Refuse to run network tests anywhere but in our own namespace (a stray marker in the env).
  const here = spawnSync(IP, ["netns", "identify", String(process.pid)], { encoding: "utf8" }).stdout.trim();
  if (here !== names.host) throw new Error(`${RUN_ENV}=${run} but this process is in namespace '${here}', not ${names.host}`);
  after(() => {
    // Something the tests left open (a child's pipe, a socket) would keep this process, and so
    // the outer one and the whole test run, waiting forever: name it and fail the file instead.
    setTimeout(() => {
      process.stderr.write(`${names.run}: still running ${EXIT_GRACE_MS} ms after the last test; open: ${process.getActiveResourcesInfo().join(", ")}\n`);
      process.exit(1);
    }, EXIT_GRACE_MS).unref();
  });
  return { names, outside: process.env[OUTSIDE_ENV] === "1" };
}

async function runOuter(file: string, outside: boolean): Promise<never> {
  const names = netNames(`hft-${randomBytes(4).toString("hex")}`);
  let code = 1;
  try {
    for (const args of buildPlan(names, outside)) execFileSync(IP, args, { stdio: ["ignore", "ignore", "pipe"] });
    code = await runInner(names, file, outside);
  } catch (err) {
    process.stderr.write(`test network ${names.run}: ${(err as Error).message}\n`);
  } finally {
    const problems = cleanup(names);
    for (const p of problems) process.stderr.write(`test network ${names.run} cleanup: ${p}\n`);
    if (problems.length > 0) code = code || 1;
  }
  process.exit(code);
}

let innerMountNs: string | null = null;

function runInner(names: TestNetNames, file: string, outside: boolean): Promise<number> {
  const argv = ["netns", "exec", names.host, process.execPath, ...process.execArgv, file, ...process.argv.slice(2)];
  const child = spawn(IP, argv, { stdio: "inherit", env: { ...process.env, [RUN_ENV]: names.run, [OUTSIDE_ENV]: outside ? "1" : "0" } });
  const forward = (sig: NodeJS.Signals) => child.kill(sig);
  process.on("SIGTERM", forward).on("SIGINT", forward);
  const ownMnt = readlinkSync("/proc/self/ns/mnt");
  // `ip netns exec` unshares the mount namespace before exec'ing node under the same pid: note it,
  // so that whatever the inner run leaves behind can be found and ended after it exits.
  const watch = setInterval(() => {
    try {
      const mnt = readlinkSync(`/proc/${child.pid}/ns/mnt`);
      if (mnt !== ownMnt) {
        innerMountNs = mnt;
        clearInterval(watch);
      }
    } catch {
      clearInterval(watch);
    }
  }, 5);
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("exit", (c, sig) => {
      clearInterval(watch);
      process.off("SIGTERM", forward).off("SIGINT", forward);
      resolve(c ?? (sig ? 128 + 9 : 1));
    });
  });
}

/** Pids of processes in mount namespace `mnt` (the inner run's, shared by all it started). */
function pidsInMountNs(mnt: string): number[] {
  const pids: number[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readlinkSync(`/proc/${e}/ns/mnt`) === mnt) pids.push(Number(e));
    } catch {
      /* gone */
    }
  }
  return pids;
}

function cleanup(names: TestNetNames): string[] {
  const problems: string[] = [];
  const leftovers = [
    ...(innerMountNs ? pidsInMountNs(innerMountNs) : []),
    ...[names.host, names.out].flatMap((ns) => nsPids(ns)),
  ].filter((p, i, all) => p !== process.pid && all.indexOf(p) === i);
  for (const pid of leftovers) {
    problems.push(`killed leftover process ${pid} (${comm(pid)})`);
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* already gone */
    }
  }
  for (const ns of [names.host, names.out]) {
    if (!listNetns().includes(ns)) continue;
    const r = spawnSync(IP, ["netns", "del", ns], { encoding: "utf8" });
    if (r.status !== 0) problems.push(`ip netns del ${ns}: ${r.stderr.trim()}`);
  }
  const left = listNetns().filter((n) => n.startsWith(names.run + "-"));
  if (left.length > 0) problems.push(`namespaces still there: ${left.join(", ")}`);
  return problems;
}

function nsPids(ns: string): number[] {
  if (!listNetns().includes(ns)) return [];
  const r = spawnSync(IP, ["netns", "pids", ns], { encoding: "utf8" });
  return r.stdout.split("\n").filter((l) => /^\d+$/.test(l)).map(Number);
}

function comm(pid: number): string {
  try {
    return readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return "?";
  }
}

/** Names of the named network namespaces (`ip netns list`, without the "(id: n)" suffixes). */
export function listNetns(): string[] {
  const out = spawnSync(IP, ["netns", "list"], { encoding: "utf8" }).stdout;
  return out.split("\n").map((l) => l.split(" ")[0]!).filter((n) => n !== "");
}
