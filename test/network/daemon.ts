/**
 * The daemon under test for network tests: a real daemon process (test/api/helpers.ts
 * spawnDaemon) started from the inner run of a network test file, so it lives in the test's host
 * namespace and everything it builds (namespaces, veths, nft tables, sysctls) stays in there. Its
 * guests use the outside world's DNS server. Plus the few guest helpers the tests share.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NETNS_PREFIX } from "../../src/network/address-plan.js";
import { killLeftoverVmms, qemusUnder, spawnDaemon, type ChildDaemon } from "../api/helpers.js";
import { IP, listNetns } from "./netns.js";
import { WORLD } from "./topology.js";

const BOOT_MS = 120_000;
const STOP_MS = 30_000;
/** Longer than any call's own bound (exec timeouts here are at most ~30 s, waits 10 s). */
const CALL_MS = 90_000;

export interface ExposedPortJson {
  guest_port: number;
  host_port: number;
  host_ip: string;
  protocol: "tcp" | "udp";
}

/** The machine JSON fields these tests read (issue 10's response shape). */
export interface NetMachine {
  id: string;
  name: string;
  status: string;
  network: { ip: string; gateway: string; mac: string; dns: string[]; internet: boolean; private_network: string | null } | null;
  exposed_ports: ExposedPortJson[];
  last_error: { code: string; message: string } | null;
}

export interface ExecResult {
  exit_code: number | null;
  stdout: string;
  stderr: string;
}

export interface NetDaemon {
  d: ChildDaemon;
  dataDir: string;
  /** Creates and starts a machine, waits (bounded) until it runs, and returns it. */
  boot(body: Record<string, unknown>): Promise<NetMachine>;
  get(id: string): Promise<NetMachine>;
  /** `sh -c script` in the guest; the call's own timeout is `timeoutS` (default 30). */
  sh(id: string, script: string, timeoutS?: number): Promise<ExecResult>;
  upload(id: string, path: string, data: Buffer, mode: string): Promise<void>;
  /**
   * Deletes every machine, stops the daemon, and asserts what it leaves: no namespace of its
   * machines, no `hfv*` link in the host namespace, no QEMU of its data dir.
   */
  close(): Promise<void>;
}

let counter = 0;

export async function startNetDaemon(extra: Record<string, string> = {}): Promise<NetDaemon> {
  const dataDir = await mkdtemp(join(tmpdir(), "hft-net-"));
  const d = await spawnDaemon(dataDir, { HYPERFLEET_DNS: WORLD.outside, HYPERFLEET_NETWORK_DEFAULT: "on", ...extra });
  const ids = new Set<string>();
  // Every API call is bounded: a daemon that stops answering fails the test with the call's name.
  const call = async (method: string, path: string, body?: unknown) => {
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${method} ${path}: no answer from the daemon in ${CALL_MS} ms`)), CALL_MS);
    });
    try {
      return await Promise.race([d.fetch(method, path, body), limit]);
    } finally {
      clearTimeout(timer);
    }
  };
  const self: NetDaemon = {
    d,
    dataDir,
    async boot(body) {
      const name = (body.name as string | undefined) ?? `net-${process.pid}-${++counter}`;
      const created = await call("POST", "/machines", { vcpu_count: 1, mem_size_mib: 256, ...body, name, start: true });
      assert.equal(created.status, 201, `create ${name}: ${JSON.stringify(created.body)}`);
      const id = created.body.id as string;
      ids.add(id);
      const deadline = Date.now() + BOOT_MS;
      for (;;) {
        const w = await call("GET", `/machines/${id}/wait?status=running&timeout=10`);
        if (w.status === 200) break;
        const m = await self.get(id);
        if (m.status === "failed" || m.status === "stopped" || Date.now() > deadline) {
          assert.fail(`machine ${name} did not reach running in ${BOOT_MS} ms: ${m.status} ${JSON.stringify(m.last_error)}`);
        }
      }
      return self.get(id);
    },
    async get(id) {
      const r = await call("GET", `/machines/${id}`);
      assert.equal(r.status, 200, `get ${id}: ${JSON.stringify(r.body)}`);
      return r.body as unknown as NetMachine;
    },
    async sh(id, script, timeoutS = 30) {
      const r = await call("POST", `/machines/${id}/exec`, { command: ["sh", "-c", script], timeout: timeoutS, max_output_bytes: 65536 });
      assert.equal(r.status, 200, `exec ${script}: ${JSON.stringify(r.body)}`);
      return r.body as unknown as ExecResult;
    },
    async upload(id, path, data, mode) {
      const r = await call("POST", `/machines/${id}/files`, { path, content: data.toString("base64"), mode });
      assert.equal(r.status, 201, `upload ${path}: ${JSON.stringify(r.body)}`);
    },
    async close() {
      const problems: string[] = [];
      for (const id of ids) {
        const r = await call("DELETE", `/machines/${id}`).catch((e: Error) => ({ status: 0, body: { message: e.message } }));
        if (r.status !== 204 && r.status !== 404) problems.push(`delete ${id}: ${r.status} ${JSON.stringify(r.body)}`);
      }
      d.proc.kill("SIGTERM");
      const timer = setTimeout(() => d.proc.kill("SIGKILL"), STOP_MS);
      await d.exited;
      clearTimeout(timer);
      const qemus = qemusUnder(join(dataDir, "machines"));
      if (qemus.length > 0) problems.push(`QEMUs left: ${qemus.map((q) => q.pid).join(", ")}`);
      killLeftoverVmms(dataDir);
      // `hf-<tag>-<machine id>` (address-plan.ts netnsName; the tag is the daemon's data dir's).
      const leftNs = listNetns().filter((n) => n.startsWith(NETNS_PREFIX) && [...ids].some((id) => n.endsWith(`-${id}`)));
      if (leftNs.length > 0) problems.push(`namespaces left: ${leftNs.join(", ")}`);
      // stderr kept: `ip` complains about veth peers in namespaces being deleted meanwhile.
      const links = spawnSync(IP, ["-o", "link", "show"], { encoding: "utf8" }).stdout.split("\n");
      const leftLinks = links.map((l) => l.split(": ")[1]?.split("@")[0] ?? "").filter((n) => n.startsWith("hfv"));
      if (leftLinks.length > 0) problems.push(`host veths left: ${leftLinks.join(", ")}`);
      await rm(dataDir, { recursive: true, force: true });
      assert.deepEqual(problems, [], "the daemon cleans up after its machines");
    },
  };
  return self;
}

export interface Probe {
  /** The probe's exit code (busybox `timeout` kills it after the limit: non-zero). */
  rc: number;
  /** Its stdout and stderr together. */
  out: string;
}

/**
 * Runs each probe in the guest at once (background jobs, each under busybox `timeout`), so N
 * unreachable targets cost one timeout, not N. Returns each probe's exit code and output.
 */
export async function probeAll(nd: NetDaemon, id: string, probes: Record<string, string>, timeoutS = 6): Promise<Record<string, Probe>> {
  const keys = Object.keys(probes);
  const quote = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;
  const jobs = keys.map((k, i) => `( timeout ${timeoutS} sh -c ${quote(probes[k]!)} >/tmp/probe.${i} 2>&1; echo $? >/tmp/probe.${i}.rc ) &`);
  const collect = keys.map((_, i) => `echo "==${i} $(cat /tmp/probe.${i}.rc)"; cat /tmp/probe.${i}; rm -f /tmp/probe.${i} /tmp/probe.${i}.rc`);
  const r = await nd.sh(id, [...jobs, "wait", ...collect].join("\n"), timeoutS + 20);
  const parts = r.stdout.split(/^==(\d+) (\d+)\n/m);
  const out: Record<string, Probe> = {};
  for (let i = 1; i + 2 < parts.length; i += 3) out[keys[Number(parts[i])]!] = { rc: Number(parts[i + 1]), out: parts[i + 2] ?? "" };
  for (const k of keys) assert.ok(out[k], `probe ${k} left no result: ${r.stdout}${r.stderr}`);
  return out;
}

/** Asserts the probe got through with exactly `body`. */
export function reached(p: Probe | undefined, body: string, what: string): void {
  assert.deepEqual(p, { rc: 0, out: body }, `${what} should get through`);
}

/** Asserts the probe failed and `body` is not in its output. */
export function blocked(p: Probe | undefined, body: string, what: string): void {
  assert.ok(p && p.rc !== 0 && !p.out.includes(body), `${what} should be blocked, got ${JSON.stringify(p)}`);
}
