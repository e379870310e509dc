/**
 * For network tests that run a real daemon as a child process inside the test's host namespace
 * (netns.ts): start it with networking on, talk to its machines, and read what it left on the
 * "host" (that namespace): its `hf-<tag>-*` namespaces, `hfv*` veths, taps, the `inet hyperfleet`
 * table, and its network rows in SQLite. Every check reads the real thing (`ip`, `nft`, /proc, the
 * db file), never the daemon's own account of it.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { instanceTag } from "../../src/network/address-plan.js";
import { killLeftoverVmms, qemusUnder, spawnDaemon, type ChildDaemon } from "../api/helpers.js";
import { IP, listNetns } from "./netns.js";

export type PortJson = { guest_port: number; host_port: number; host_ip: string; protocol: string };
export type MachineJson = {
  id: string;
  status: string;
  pid: number | null;
  network: { ip: string; gateway: string; mac: string } | null;
  exposed_ports: PortJson[];
  last_error: { code: string; message: string } | null;
};

/** One data dir and the daemons run on it, one after the other (a restart is a new child). */
export class DaemonHost {
  readonly daemons: ChildDaemon[] = [];
  private constructor(
    readonly dataDir: string,
    readonly tag: string,
  ) {}

  static async create(): Promise<DaemonHost> {
    const dataDir = await mkdtemp(join(tmpdir(), "hf-netlife-"));
    return new DaemonHost(dataDir, instanceTag(dataDir));
  }

  get d(): ChildDaemon {
    const d = this.daemons.at(-1);
    if (!d) throw new Error("no daemon started");
    return d;
  }

  /** A new daemon on the data dir, networking on; its pid goes to `daemon.pid` in the data dir. */
  async start(): Promise<ChildDaemon> {
    const d = await spawnDaemon(this.dataDir, { HYPERFLEET_NETWORK_DEFAULT: "on", LOG_LEVEL: "info" });
    this.daemons.push(d);
    writeFileSync(join(this.dataDir, "daemon.pid"), `${d.pid}\n`);
    return d;
  }

  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const d = this.d;
    if (d.proc.exitCode === null && d.proc.signalCode === null) process.kill(d.pid, signal);
    await d.exited;
  }

  /** Deletes the machines left (best effort), ends every daemon and VMM of this data dir by pid, removes it. */
  async close(): Promise<void> {
    const d = this.daemons.at(-1);
    if (d && d.proc.exitCode === null && d.proc.signalCode === null) {
      const list = await d.fetch("GET", "/machines").catch(() => null);
      for (const m of (list?.body as unknown as MachineJson[] | undefined) ?? []) await d.fetch("DELETE", `/machines/${m.id}`).catch(() => undefined);
    }
    for (const c of this.daemons) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill("SIGKILL");
    await Promise.all(this.daemons.map((c) => c.exited));
    killLeftoverVmms(this.dataDir);
    await rm(this.dataDir, { recursive: true, force: true });
  }

  async machine(id: string): Promise<MachineJson> {
    const r = await this.d.fetch("GET", `/machines/${id}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body as unknown as MachineJson;
  }

  /** Creates a networked machine exposing `guestPorts` on 127.0.0.1 (ports of the range). */
  async create(name: string, start: boolean, guestPorts: number[] = [80]): Promise<MachineJson> {
    const exposed_ports = guestPorts.map((guest_port) => ({ guest_port }));
    const r = await this.d.fetch("POST", "/machines", { name, vcpu_count: 1, mem_size_mib: 128, exposed_ports, start });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const m = r.body as unknown as MachineJson;
    assert.ok(m.network, "networked by default (HYPERFLEET_NETWORK_DEFAULT=on)");
    assert.equal(m.exposed_ports.length, guestPorts.length);
    return m;
  }

  /** Waits for `status` (long polls of 30 s: boots are slow when other VMs share the CPUs). */
  async waitFor(id: string, status: string, tries = 4): Promise<MachineJson> {
    let w = await this.d.fetch("GET", `/machines/${id}/wait?status=${status}&timeout=30`);
    for (let i = 1; i < tries && w.status === 408; i++) w = await this.d.fetch("GET", `/machines/${id}/wait?status=${status}&timeout=30`);
    assert.equal(w.status, 200, `${id} -> ${status}: ${JSON.stringify(w.body)}\n${this.d.output().slice(-3000)}`);
    return w.body as unknown as MachineJson;
  }

  /** Starts busybox httpd on guest port 80 serving `body`. */
  async serve(id: string, body: string): Promise<void> {
    const script = `mkdir -p /tmp/www && echo ${body} > /tmp/www/index.html && httpd -p 80 -h /tmp/www </dev/null >/dev/null 2>&1`;
    const r = await this.d.fetch("POST", `/machines/${id}/exec`, { command: ["sh", "-c", script] });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.exit_code, 0, JSON.stringify(r.body));
  }
}

/** The exposed port of `m` that forwards to `guestPort`. */
export function portOf(m: MachineJson, guestPort: number): PortJson {
  const p = m.exposed_ports.find((x) => x.guest_port === guestPort);
  assert.ok(p, `${m.id} exposes guest port ${guestPort}`);
  return p;
}

/** GET http://127.0.0.1:<port>/ through the exposed port; the body, trimmed. */
export async function getThrough(port: PortJson): Promise<string> {
  const res = await fetch(`http://${port.host_ip}:${port.host_port}/`, { signal: AbortSignal.timeout(10_000) });
  assert.equal(res.status, 200);
  return (await res.text()).trim();
}

/** This daemon's namespaces, from `ip netns list` and from /run/netns (a half-made one is only a file). */
export function namespacesOf(tag: string): string[] {
  const prefix = `hf-${tag}-`;
  const files = existsSync("/run/netns") ? readdirSync("/run/netns") : [];
  return [...new Set([...listNetns(), ...files].filter((n) => n.startsWith(prefix)))].sort();
}

/** Link names in this (the test's host) namespace. */
export function hostLinks(): string[] {
  const links = JSON.parse(execFileSync(IP, ["-j", "link", "show"], { encoding: "utf8" }) || "[]") as Array<{ ifname: string }>;
  return links.map((l) => l.ifname).sort();
}

export interface HostRules {
  /** Whether `inet hyperfleet` exists at all. */
  table: boolean;
  egressChains: string[];
  /** `vm_sources` elements as `hfv<slot> . <ip>`. */
  sources: string[];
  /** dnat rules as `<match> <proto> dport <port> -> <vm ip>:<port>`. */
  dnat: string[];
}

/** The host's `inet hyperfleet` table, read back from nft. */
export function hostRules(): HostRules {
  let text: string;
  try {
    text = execFileSync("nft", ["list", "table", "inet", "hyperfleet"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch {
    return { table: false, egressChains: [], sources: [], dnat: [] };
  }
  const egressChains = [...text.matchAll(/chain (egress_\d+) \{/g)].map((m) => m[1]!).sort();
  const set = /set vm_sources \{([^}]*)\}/.exec(text)?.[1] ?? "";
  const elems = /elements = \{([^}]*)/.exec(set)?.[1] ?? "";
  const sources = elems
    .split(",")
    .map((e) => e.trim().replace(/"/g, ""))
    .filter(Boolean)
    .sort();
  const dnat = text
    .split("\n")
    .filter((l) => l.includes(" dnat ip to "))
    .map((l) => l.trim())
    .sort();
  return { table: true, egressChains, sources, dnat };
}

/** Rows of the network tables in the daemon's db (read-only, so a running daemon is not disturbed). */
export function networkRows(dataDir: string): { slots: number; ports: number } {
  const db = new Database(join(dataDir, "hyperfleet.db"), { readonly: true, fileMustExist: true });
  try {
    const count = (t: string) => (db.prepare(`SELECT count(*) AS n FROM ${t}`).get() as { n: number }).n;
    return { slots: count("network_slots"), ports: count("exposed_ports") };
  } finally {
    db.close();
  }
}

/** Nothing of any machine of this daemon is left on the host (the host table may stay, empty). */
export function assertHostClean(h: DaemonHost): void {
  assert.deepEqual(namespacesOf(h.tag), [], "no namespace of this daemon");
  const links = hostLinks();
  assert.deepEqual(links.filter((l) => l.startsWith("hfv")), [], "no host veth");
  assert.deepEqual(links.filter((l) => l.startsWith("tap")), [], "no tap in the host namespace");
  const rules = hostRules();
  assert.deepEqual({ chains: rules.egressChains, sources: rules.sources, dnat: rules.dnat }, { chains: [], sources: [], dnat: [] }, "no per-VM rule");
  assert.deepEqual(qemusUnder(join(h.dataDir, "machines")), [], "no QEMU of this data dir");
}

/** The host rules are exactly those of `machines` (by slot address and exposed port). */
export function assertRulesFor(machines: MachineJson[]): void {
  const rules = hostRules();
  assert.ok(rules.table, "the host table exists");
  assert.equal(rules.egressChains.length, machines.length, `one egress chain per up machine: ${JSON.stringify(rules)}`);
  const ips = machines.map((m) => m.network!.ip).sort();
  assert.deepEqual(rules.sources.map((s) => s.split(" . ")[1]).sort(), ips, `vm_sources: ${JSON.stringify(rules)}`);
  const want = machines.flatMap((m) => m.exposed_ports.map((p) => `dport ${p.host_port} dnat ip to ${m.network!.ip}:${p.guest_port}`)).sort();
  assert.deepEqual(rules.dnat.map((l) => l.slice(l.indexOf("dport "))).sort(), want, `dnat: ${JSON.stringify(rules)}`);
}
