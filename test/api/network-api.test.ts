/**
 * VM networking at create (docs/adr/0008) through the HTTP API with a real store: the request's
 * `network` and `exposed_ports`, their 4xx answers, the recorded addresses and ports, allocation
 * from HYPERFLEET_PORT_RANGE, and release on delete. Machines are created with `start: false` and
 * never started: nothing here touches the host's network (only 127.0.0.1 is bound, by the probe
 * and by this test).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { existsSync, readFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { ERROR_CODES } from "../../src/core/errors.js";
import { macFromMachineId } from "../../src/network/mac.js";
import { probePort } from "../../src/network/port-probe.js";
import { ASSETS_DIR, json, startTestDaemon, type TestDaemon } from "./helpers.js";

type NetworkJson = { ip: string; gateway: string; mac: string; dns: string[]; internet: boolean; allow_out: string[]; deny_out: string[]; private_network: string | null };
type PortJson = { guest_port: number; host_port: number; host_ip: string; protocol: string };
type MachineJson = { id: string; name: string; status: string; initrd_path: string | null; network: NetworkJson | null; exposed_ports: PortJson[] };
type ErrorJson = { error: { code: string; message: string; field?: string } };

const RANGE = { min: 21200, max: 21399 };
const DNS = ["192.0.2.53", "198.51.100.53"];
/** Boot paths from the real guest assets, when there are some (no machine here ever starts). */
const HAVE_ASSETS = existsSync(join(ASSETS_DIR, "assets.json"));

let t: TestDaemon;
before(async () => {
  t = await startTestDaemon({
    HYPERFLEET_NETWORK_DEFAULT: "on",
    HYPERFLEET_SUBNET: "10.211.0.0/16",
    HYPERFLEET_DNS: DNS.join(","),
    HYPERFLEET_PORT_RANGE: `${RANGE.min}-${RANGE.max}`,
    ...(HAVE_ASSETS ? {} : { HYPERFLEET_KERNEL_IMAGE_PATH: "/nonexistent/vmlinux", HYPERFLEET_ROOTFS_PATH: "/nonexistent/rootfs.ext4" }),
  });
});
after(async () => {
  await t.close();
});

let seq = 0;
const body = (extra: Record<string, unknown> = {}) => ({ name: `net-${++seq}`, vcpu_count: 1, mem_size_mib: 128, ...extra });

async function create(d: TestDaemon, extra: Record<string, unknown> = {}): Promise<MachineJson> {
  const r = await d.req("POST", "/machines", body(extra));
  assert.equal(r.statusCode, 201, r.body);
  return json<MachineJson>(r);
}

async function refused(d: TestDaemon, extra: Record<string, unknown>, status: number, code: string, field?: string): Promise<ErrorJson> {
  const before = (await d.daemon.store.machines.list()).length;
  const slots = (await d.daemon.store.networkSlots.list()).length;
  const r = await d.req("POST", "/machines", body(extra));
  assert.equal(r.statusCode, status, r.body);
  const e = json<ErrorJson>(r);
  assert.equal(e.error.code, code, r.body);
  assert.ok(e.error.code in ERROR_CODES);
  if (field !== undefined) assert.equal(e.error.field, field, r.body);
  // Nothing is left behind: no machine, no slot.
  assert.equal((await d.daemon.store.machines.list()).length, before, "no machine was created");
  assert.equal((await d.daemon.store.networkSlots.list()).length, slots, "no slot was kept");
  return e;
}

/** A TCP port on 127.0.0.1 that nothing holds right now (the OS's choice, released at once). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen({ host: "127.0.0.1", port: 0 }, r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** 10.211.0.0/16: slot i is 10.211.0.0 + 2i (gateway) and + 2i + 1 (the VM). */
function inSubnet(ip: string): boolean {
  return ip.startsWith("10.211.");
}

test("a machine that says nothing gets a network with the default policy (HYPERFLEET_NETWORK_DEFAULT=on)", async () => {
  const m = await create(t);
  assert.ok(m.network, "has a network");
  assert.deepEqual(Object.keys(m.network).sort(), ["allow_out", "deny_out", "dns", "gateway", "internet", "ip", "mac", "private_network"]);
  assert.ok(inSubnet(m.network.ip) && inSubnet(m.network.gateway), JSON.stringify(m.network));
  const last = (ip: string) => Number(ip.split(".").at(-1)) + 256 * Number(ip.split(".").at(-2));
  assert.equal(last(m.network.ip), last(m.network.gateway) + 1, "the VM's address follows its gateway");
  assert.equal(last(m.network.ip) % 2, 1);
  assert.equal(m.network.mac, macFromMachineId(m.id));
  assert.deepEqual(m.network.dns, DNS);
  assert.equal(m.network.internet, true);
  assert.deepEqual(m.network.allow_out, []);
  assert.deepEqual(m.network.deny_out, []);
  assert.equal(m.network.private_network, null);
  assert.deepEqual(m.exposed_ports, []);
  // GET and the list show the same.
  const got = json<MachineJson>(await t.req("GET", `/machines/${m.id}`));
  assert.deepEqual(got.network, m.network);
  const listed = json<MachineJson[]>(await t.req("GET", "/machines")).find((x) => x.id === m.id);
  assert.deepEqual(listed?.network, m.network);
  assert.deepEqual(listed?.exposed_ports, []);
});

test("network: false is no network; true and {} are the default policy; the policy is recorded canonically", async () => {
  const none = await create(t, { network: false });
  assert.equal(none.network, null);
  assert.deepEqual(none.exposed_ports, []);
  assert.equal((await t.daemon.store.networkSlots.list()).some((s) => s.machineId === none.id), false, "no slot for a machine without a network");
  const yes = await create(t, { network: true });
  assert.equal(yes.network?.internet, true);
  const custom = await create(t, { network: { internet: false, allow_out: ["1.1.1.1", "10.20.0.0/16"], deny_out: ["0.0.0.0/0"], private_network: "backend" } });
  assert.deepEqual(
    { internet: custom.network?.internet, allow_out: custom.network?.allow_out, deny_out: custom.network?.deny_out, private_network: custom.network?.private_network },
    { internet: false, allow_out: ["1.1.1.1/32", "10.20.0.0/16"], deny_out: ["0.0.0.0/0"], private_network: "backend" },
  );
});

test("the boot paths of a machine with a network name the initramfs with the NIC driver", { skip: HAVE_ASSETS ? false : "no guest assets" }, async () => {
  const assets = JSON.parse(readFileSync(join(ASSETS_DIR, "assets.json"), "utf8")) as { initramfs: string; initramfsBasic: string };
  assert.notEqual(assets.initramfs, assets.initramfsBasic);
  assert.equal((await create(t)).initrd_path, assets.initramfs);
  assert.equal((await create(t, { network: false })).initrd_path, assets.initramfsBasic);
});

test("400: bad CIDRs and names, ports without a network, duplicates, host_ip that is not the host's", async () => {
  await refused(t, { network: { allow_out: ["10.1.2.3/8"] } }, 400, "INVALID_ARGUMENT", "network.allow_out[0]");
  await refused(t, { network: { deny_out: ["10.0.0.0/8", "10.0.0.0/40"] } }, 400, "INVALID_ARGUMENT", "network.deny_out[1]");
  await refused(t, { network: { deny_out: ["300.0.0.0/8"] } }, 400, "INVALID_ARGUMENT", "network.deny_out[0]");
  await refused(t, { network: { private_network: "-x" } }, 400, "INVALID_ARGUMENT", "network.private_network");
  await refused(t, { network: false, exposed_ports: [{ guest_port: 80 }] }, 400, "INVALID_ARGUMENT", "exposed_ports");
  await refused(t, { exposed_ports: [{ guest_port: 80, host_port: 8080 }, { guest_port: 81, host_port: 8080 }] }, 400, "INVALID_ARGUMENT", "exposed_ports[1].host_port");
  await refused(t, { exposed_ports: [{ guest_port: 80, host_port: 8080, host_ip: "0.0.0.0" }, { guest_port: 81, host_port: 8080 }] }, 400, "INVALID_ARGUMENT", "exposed_ports[1].host_port");
  // TEST-NET-1 is on no interface here: the bind probe fails with EADDRNOTAVAIL, nothing is sent.
  await refused(t, { exposed_ports: [{ guest_port: 80, host_ip: "192.0.2.1" }] }, 400, "INVALID_ARGUMENT", "exposed_ports[0].host_ip");
  await refused(t, { exposed_ports: [{ guest_port: 80, host_port: await freePort(), host_ip: "192.0.2.1" }] }, 400, "INVALID_ARGUMENT", "exposed_ports[0].host_ip");
  await refused(t, { exposed_ports: [{ guest_port: 80, host_ip: "10.211.0.2" }] }, 400, "INVALID_ARGUMENT", "exposed_ports[0].host_ip");
  await refused(t, { exposed_ports: [{ guest_port: 53, host_ip: "224.0.0.251", protocol: "udp" }] }, 400, "INVALID_ARGUMENT", "exposed_ports[0].host_ip");
});

test("exposed ports: defaults (tcp, 127.0.0.1, a port of the range), the record, sorted by protocol then host port", async () => {
  const named = await freePort();
  const m = await create(t, { exposed_ports: [{ guest_port: 8080, host_port: named }, { guest_port: 53, protocol: "udp" }, { guest_port: 80 }] });
  assert.equal(m.exposed_ports.length, 3);
  const [a, b, c] = m.exposed_ports;
  assert.deepEqual(a && { ...a, host_port: 0 }, { guest_port: 80, host_port: 0, host_ip: "127.0.0.1", protocol: "tcp" });
  assert.deepEqual(b, { guest_port: 8080, host_port: named, host_ip: "127.0.0.1", protocol: "tcp" });
  assert.deepEqual(c && { ...c, host_port: 0 }, { guest_port: 53, host_port: 0, host_ip: "127.0.0.1", protocol: "udp" });
  for (const p of [a!, c!]) assert.ok(p.host_port >= RANGE.min && p.host_port <= RANGE.max, `${p.host_port} is in HYPERFLEET_PORT_RANGE`);
  for (const p of m.exposed_ports) assert.deepEqual(Object.keys(p).sort(), ["guest_port", "host_ip", "host_port", "protocol"]);
  const got = json<MachineJson>(await t.req("GET", `/machines/${m.id}`));
  assert.deepEqual(got.exposed_ports, m.exposed_ports);
  assert.deepEqual(json<MachineJson[]>(await t.req("GET", "/machines")).find((x) => x.id === m.id)?.exposed_ports, m.exposed_ports);
});

test("409 PORT_UNAVAILABLE: a port a host process holds (TCP and UDP, probed on 127.0.0.1)", async () => {
  const server = createServer();
  await new Promise<void>((r) => server.listen({ host: "127.0.0.1", port: 0 }, r));
  const udp = createSocket("udp4");
  await new Promise<void>((r) => udp.bind({ address: "127.0.0.1", port: 0 }, r));
  try {
    const tcpPort = (server.address() as AddressInfo).port;
    const e = await refused(t, { exposed_ports: [{ guest_port: 80, host_port: tcpPort }] }, 409, "PORT_UNAVAILABLE", "exposed_ports[0].host_port");
    assert.match(e.error.message, new RegExp(`127\\.0\\.0\\.1:${tcpPort}/tcp`));
    await refused(t, { exposed_ports: [{ guest_port: 80, host_port: tcpPort, host_ip: "0.0.0.0" }] }, 409, "PORT_UNAVAILABLE", "exposed_ports[0].host_port");
    await refused(t, { exposed_ports: [{ guest_port: 53, host_port: udp.address().port, protocol: "udp" }] }, 409, "PORT_UNAVAILABLE", "exposed_ports[0].host_port");
  } finally {
    server.close();
    udp.close();
  }
});

test("409 PORT_UNAVAILABLE: a port another machine holds (0.0.0.0 overlaps every address); delete releases it", async () => {
  const port = await freePort();
  const first = await create(t, { exposed_ports: [{ guest_port: 80, host_port: port }] });
  await refused(t, { exposed_ports: [{ guest_port: 81, host_port: port }] }, 409, "PORT_UNAVAILABLE", "exposed_ports[0].host_port");
  await refused(t, { exposed_ports: [{ guest_port: 81, host_port: port, host_ip: "0.0.0.0" }] }, 409, "PORT_UNAVAILABLE", "exposed_ports[0].host_port");
  // The other protocol and another address are other ports.
  const udp = await create(t, { exposed_ports: [{ guest_port: 81, host_port: port, protocol: "udp" }] });
  assert.equal(udp.exposed_ports[0]?.host_port, port);
  const other = await create(t, { exposed_ports: [{ guest_port: 81, host_port: port, host_ip: "127.0.0.2" }] });
  assert.equal(other.exposed_ports[0]?.host_ip, "127.0.0.2");

  const wildPort = await freePort();
  const wild = await create(t, { exposed_ports: [{ guest_port: 80, host_port: wildPort, host_ip: "0.0.0.0" }] });
  await refused(t, { exposed_ports: [{ guest_port: 80, host_port: wildPort }] }, 409, "PORT_UNAVAILABLE", "exposed_ports[0].host_port");

  // Deleting the holder gives back the port and the address.
  const ip = first.network?.ip;
  assert.equal((await t.req("DELETE", `/machines/${first.id}`)).statusCode, 204);
  const again = await create(t, { exposed_ports: [{ guest_port: 81, host_port: port }] });
  assert.equal(again.exposed_ports[0]?.host_port, port);
  assert.equal(again.network?.ip, ip, "the lowest free address is the one just released");
  assert.equal((await t.req("DELETE", `/machines/${wild.id}`)).statusCode, 204);
  assert.equal((await create(t, { exposed_ports: [{ guest_port: 80, host_port: wildPort }] })).exposed_ports[0]?.host_port, wildPort);
});

test("20 concurrent creates get 20 distinct addresses and 20 distinct ports of the range", async () => {
  const rs = await Promise.all(Array.from({ length: 20 }, () => t.req("POST", "/machines", body({ exposed_ports: [{ guest_port: 80 }] }))));
  for (const r of rs) assert.equal(r.statusCode, 201, r.body);
  const ms = rs.map((r) => json<MachineJson>(r));
  assert.equal(new Set(ms.map((m) => m.network?.ip)).size, 20);
  assert.equal(new Set(ms.map((m) => m.network?.mac)).size, 20);
  const ports = ms.map((m) => m.exposed_ports[0]!.host_port);
  assert.equal(new Set(ports).size, 20);
  for (const p of ports) assert.ok(p >= RANGE.min && p <= RANGE.max, `${p} in range`);
  // And the store agrees: one slot per machine, no two machines on one.
  const slots = await t.daemon.store.networkSlots.list();
  for (const m of ms) assert.equal(slots.filter((s) => s.machineId === m.id).length, 1);
});

test("HYPERFLEET_NETWORK_DEFAULT=off: no network unless asked; ports then need one; an exhausted range and subnet are 409", async () => {
  // A /29 has two usable slots; a range of two ports.
  const base = await freeRun();
  const d = await startTestDaemon({
    HYPERFLEET_NETWORK_DEFAULT: "off",
    HYPERFLEET_SUBNET: "10.212.0.0/29",
    HYPERFLEET_PORT_RANGE: `${base}-${base + 1}`,
    HYPERFLEET_KERNEL_IMAGE_PATH: "/nonexistent/vmlinux",
    HYPERFLEET_ROOTFS_PATH: "/nonexistent/rootfs.ext4",
  });
  try {
    assert.equal((await create(d)).network, null);
    const e = await refused(d, { exposed_ports: [{ guest_port: 80 }] }, 400, "INVALID_ARGUMENT", "exposed_ports");
    assert.match(e.error.message, /HYPERFLEET_NETWORK_DEFAULT/);
    const a = await create(d, { network: {}, exposed_ports: [{ guest_port: 80 }, { guest_port: 81 }] });
    assert.deepEqual(a.exposed_ports.map((p) => p.host_port), [base, base + 1]);
    assert.equal(a.network?.ip, "10.212.0.3");
    await refused(d, { network: {}, exposed_ports: [{ guest_port: 80 }] }, 409, "PORT_RANGE_EXHAUSTED", "exposed_ports[0].host_port");
    const b = await create(d, { network: {} });
    assert.equal(b.network?.ip, "10.212.0.5");
    await refused(d, { network: {} }, 409, "INSUFFICIENT_CAPACITY");
  } finally {
    await d.close();
  }
});

/** Two consecutive free TCP ports on 127.0.0.1, below Linux's ephemeral range and outside RANGE. */
async function freeRun(): Promise<number> {
  for (let base = 21500; base < 22000; base += 2) {
    const v = await Promise.all([0, 1].map((i) => probePort({ protocol: "tcp", hostIp: "127.0.0.1", hostPort: base + i })));
    if (v.every((x) => x === "free")) return base;
  }
  throw new Error("no two consecutive free ports in 21500-21999");
}

test("fuzz: a few hundred network and exposed_ports bodies, never a 5xx, always a known code", async () => {
  // mulberry32, seeded: a failure reproduces.
  let seed = 0x6e657473;
  const rnd = () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const cidrs = ["10.0.0.0/8", "1.2.3.4", "1.2.3.4/24", "0.0.0.0/0", "999.1.1.1/8", "", "10.0.0.0/", "::1/128", 7, null];
  const ips = ["127.0.0.1", "127.0.0.3", "0.0.0.0", "192.0.2.9", "10.211.0.3", "255.255.255.255", "1.2.3", "", 5];
  const ports = [1, 80, 65535, 0, 65536, -1, 1.5, "80", RANGE.min, null];
  const network = () =>
    pick<unknown>([
      undefined,
      true,
      false,
      null,
      "on",
      { internet: pick([true, false, "no"]) },
      { allow_out: [pick(cidrs), pick(cidrs)], deny_out: [pick(cidrs)] },
      { private_network: pick(["a", "back_end-1", "Bad", "", "x".repeat(49), 3]) },
    ]);
  const exposed = () =>
    pick<unknown>([
      undefined,
      [],
      [{ guest_port: pick(ports) }],
      [{ guest_port: 80, host_port: pick(ports), host_ip: pick(ips), protocol: pick(["tcp", "udp", "TCP", undefined]) }],
      [{ guest_port: 80, host_port: 20999 }, { guest_port: 81, host_port: 20999, host_ip: pick(ips) }],
      "80:80",
    ]);
  const statuses = new Map<number, number>();
  for (let i = 0; i < 300; i++) {
    const extra: Record<string, unknown> = {};
    const n = network();
    const e = exposed();
    if (n !== undefined) extra.network = n;
    if (e !== undefined) extra.exposed_ports = e;
    const r = await t.req("POST", "/machines", body(extra));
    statuses.set(r.statusCode, (statuses.get(r.statusCode) ?? 0) + 1);
    assert.ok(r.statusCode < 500, `${JSON.stringify(extra)} -> ${r.statusCode} ${r.body}`);
    if (r.statusCode >= 400) assert.ok(json<ErrorJson>(r).error.code in ERROR_CODES, r.body);
    else await t.req("DELETE", `/machines/${json<MachineJson>(r).id}`);
  }
  assert.ok((statuses.get(201) ?? 0) > 0 && (statuses.get(400) ?? 0) > 0, `both outcomes were exercised: ${JSON.stringify([...statuses])}`);
});
