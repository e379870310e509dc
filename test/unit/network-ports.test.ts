/**
 * Create-time network rules (src/network/policy.ts, exposed-ports.ts, port-probe.ts): the policy's
 * defaults and CIDRs, port wishes, overlap, and host port assignment with the real bind probe on
 * 127.0.0.1 (only loopback is ever bound here).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createSocket, type Socket } from "node:dgram";
import { createServer, type Server, type AddressInfo } from "node:net";
import { isHyperfleetError } from "../../src/core/errors.js";
import { networkPolicy } from "../../src/network/policy.js";
import { assignPorts, portsOverlap, portWishes, type PortKey, type PortRules } from "../../src/network/exposed-ports.js";
import { probePort } from "../../src/network/port-probe.js";

const RULES: PortRules = { defaultHostIp: "127.0.0.1", range: { min: 21000, max: 21999 }, subnet: "10.210.0.0/16" };

function throwsCode(fn: () => unknown, code: string, field?: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isHyperfleetError(e), String(e));
    assert.equal(e.code, code, e.message);
    if (field !== undefined) assert.equal(e.details?.field, field, e.message);
    return true;
  });
}

async function rejectsCode(p: Promise<unknown>, code: string, field?: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isHyperfleetError(e), String(e));
    assert.equal(e.code, code, e.message);
    if (field !== undefined) assert.equal(e.details?.field, field, e.message);
    return true;
  });
}

async function tcpHolder(): Promise<{ port: number; server: Server }> {
  const server = createServer();
  await new Promise<void>((r) => server.listen({ host: "127.0.0.1", port: 0 }, r));
  return { port: (server.address() as AddressInfo).port, server };
}

async function udpHolder(): Promise<{ port: number; socket: Socket }> {
  const socket = createSocket("udp4");
  await new Promise<void>((r) => socket.bind({ address: "127.0.0.1", port: 0 }, r));
  return { port: socket.address().port, socket };
}

test("policy: defaults, canonical CIDRs, duplicates dropped", () => {
  assert.deepEqual(networkPolicy({}), { internet: true, allowOut: [], denyOut: [], privateNetwork: null });
  assert.deepEqual(networkPolicy({ internet: false, allowOut: ["1.2.3.4", "10.0.0.0/8", "1.2.3.4/32"], denyOut: ["0.0.0.0/0"], privateNetwork: "db-1" }), {
    internet: false,
    allowOut: ["1.2.3.4/32", "10.0.0.0/8"],
    denyOut: ["0.0.0.0/0"],
    privateNetwork: "db-1",
  });
});

test("policy: a bad CIDR names its entry; set host bits suggest the network", () => {
  throwsCode(() => networkPolicy({ allowOut: ["10.0.0.0/8", "10.1.2.3/8"] }), "INVALID_ARGUMENT", "network.allow_out[1]");
  assert.throws(() => networkPolicy({ denyOut: ["10.1.2.3/8"] }), /did you mean 10\.0\.0\.0\/8/);
  throwsCode(() => networkPolicy({ denyOut: ["10.0.0.0/33"] }), "INVALID_ARGUMENT", "network.deny_out[0]");
  throwsCode(() => networkPolicy({ denyOut: ["256.0.0.0/8"] }), "INVALID_ARGUMENT", "network.deny_out[0]");
  throwsCode(() => networkPolicy({ privateNetwork: "Upper" }), "INVALID_ARGUMENT", "network.private_network");
  throwsCode(() => networkPolicy({ allowOut: Array.from({ length: 65 }, () => "10.0.0.0/8") }), "INVALID_ARGUMENT", "network.allow_out");
});

test("overlap: same protocol and port, and an address in common (0.0.0.0 is every address)", () => {
  const k = (hostIp: string, hostPort = 8080, protocol: "tcp" | "udp" = "tcp"): PortKey => ({ hostIp, hostPort, protocol });
  assert.ok(portsOverlap(k("127.0.0.1"), k("127.0.0.1")));
  assert.ok(portsOverlap(k("0.0.0.0"), k("127.0.0.1")));
  assert.ok(portsOverlap(k("192.0.2.7"), k("0.0.0.0")));
  assert.ok(!portsOverlap(k("127.0.0.1"), k("127.0.0.2")));
  assert.ok(!portsOverlap(k("127.0.0.1"), k("127.0.0.1", 8081)));
  assert.ok(!portsOverlap(k("0.0.0.0"), k("0.0.0.0", 8080, "udp")));
});

test("wishes: defaults, host_ip checks, duplicates within one request", () => {
  assert.deepEqual(portWishes([{ guestPort: 80 }, { guestPort: 53, hostPort: 5353, hostIp: "0.0.0.0", protocol: "udp" }], RULES), [
    { index: 0, protocol: "tcp", hostIp: "127.0.0.1", hostPort: undefined, guestPort: 80 },
    { index: 1, protocol: "udp", hostIp: "0.0.0.0", hostPort: 5353, guestPort: 53 },
  ]);
  throwsCode(() => portWishes([{ guestPort: 80, hostIp: "10.210.0.2" }], RULES), "INVALID_ARGUMENT", "exposed_ports[0].host_ip");
  throwsCode(() => portWishes([{ guestPort: 80, hostIp: "239.1.1.1", protocol: "udp" }], RULES), "INVALID_ARGUMENT", "exposed_ports[0].host_ip");
  throwsCode(() => portWishes([{ guestPort: 80, hostIp: "255.255.255.255" }], RULES), "INVALID_ARGUMENT", "exposed_ports[0].host_ip");
  throwsCode(() => portWishes([{ guestPort: 80, hostIp: "1.2.3.256" }], RULES), "INVALID_ARGUMENT", "exposed_ports[0].host_ip");
  throwsCode(() => portWishes([{ guestPort: 80, hostPort: 8080 }, { guestPort: 81, hostPort: 8080 }], RULES), "INVALID_ARGUMENT", "exposed_ports[1].host_port");
  throwsCode(() => portWishes([{ guestPort: 80, hostPort: 8080, hostIp: "0.0.0.0" }, { guestPort: 81, hostPort: 8080 }], RULES), "INVALID_ARGUMENT", "exposed_ports[1].host_port");
  // Another protocol or another address is another port.
  assert.equal(portWishes([{ guestPort: 80, hostPort: 8080 }, { guestPort: 80, hostPort: 8080, protocol: "udp" }, { guestPort: 80, hostPort: 8080, hostIp: "127.0.0.2" }], RULES).length, 3);
});

test("probe: free, in use (TCP and UDP), not a local address", async () => {
  const tcp = await tcpHolder();
  const udp = await udpHolder();
  try {
    assert.equal(await probePort({ protocol: "tcp", hostIp: "127.0.0.1", hostPort: tcp.port }), "in-use");
    assert.equal(await probePort({ protocol: "udp", hostIp: "127.0.0.1", hostPort: udp.port }), "in-use");
    // A wildcard bind collides with one on a specific address.
    assert.equal(await probePort({ protocol: "tcp", hostIp: "0.0.0.0", hostPort: tcp.port }), "in-use");
    // 192.0.2.0/24 (TEST-NET-1) is on no interface of any real host: nothing is sent, the bind fails.
    assert.equal(await probePort({ protocol: "tcp", hostIp: "192.0.2.1", hostPort: tcp.port }), "not-local");
    assert.equal(await probePort({ protocol: "udp", hostIp: "192.0.2.1", hostPort: udp.port }), "not-local");
  } finally {
    tcp.server.close();
    udp.socket.close();
  }
  // Released: the probe's own socket does not linger either (probing twice finds it free twice).
  assert.equal(await probePort({ protocol: "tcp", hostIp: "127.0.0.1", hostPort: tcp.port }), "free");
  assert.equal(await probePort({ protocol: "tcp", hostIp: "127.0.0.1", hostPort: tcp.port }), "free");
  assert.equal(await probePort({ protocol: "udp", hostIp: "127.0.0.1", hostPort: udp.port }), "free");
});

/** Four consecutive free TCP ports on 127.0.0.1, below Linux's ephemeral range (no outgoing socket takes them meanwhile). */
async function freeRun(): Promise<number> {
  for (let base = 21000; base < 22000; base += 4) {
    const verdicts = await Promise.all([0, 1, 2, 3].map((i) => probePort({ protocol: "tcp", hostIp: "127.0.0.1", hostPort: base + i })));
    if (verdicts.every((v) => v === "free")) return base;
  }
  throw new Error("no four consecutive free ports in 21000-21999");
}

test("assign: named ports checked against other machines and the host", async () => {
  const tcp = await tcpHolder();
  try {
    const held: PortKey[] = [{ protocol: "tcp", hostIp: "0.0.0.0", hostPort: 30001 }];
    await rejectsCode(assignPorts(portWishes([{ guestPort: 80, hostPort: 30001 }], RULES), held, RULES.range, probePort), "PORT_UNAVAILABLE", "exposed_ports[0].host_port");
    await rejectsCode(assignPorts(portWishes([{ guestPort: 80, hostPort: tcp.port }], RULES), [], RULES.range, probePort), "PORT_UNAVAILABLE", "exposed_ports[0].host_port");
    await rejectsCode(assignPorts(portWishes([{ guestPort: 80, hostIp: "192.0.2.1" }], RULES), [], RULES.range, probePort), "INVALID_ARGUMENT", "exposed_ports[0].host_ip");
    // Another machine's port on another address, or of the other protocol, is no obstacle.
    const ok = await assignPorts(portWishes([{ guestPort: 80, hostPort: 30001, protocol: "udp" }], RULES), held, RULES.range, probePort);
    assert.deepEqual(ok, [{ protocol: "udp", hostIp: "127.0.0.1", hostPort: 30001, guestPort: 80 }]);
  } finally {
    tcp.server.close();
  }
});

test("assign: ports named nowhere get the lowest port of the range no machine holds and the host does not use", async () => {
  const base = await freeRun();
  const range = { min: base, max: base + 3 };
  const hostHeld = createServer();
  await new Promise<void>((r) => hostHeld.listen({ host: "127.0.0.1", port: base + 1 }, r));
  try {
    const held: PortKey[] = [{ protocol: "tcp", hostIp: "127.0.0.1", hostPort: base }];
    // base: another machine's; base+1: the host's; base+2: named by this request; base+3 is what is left.
    const got = await assignPorts(portWishes([{ guestPort: 1 }, { guestPort: 2, hostPort: base + 2 }], RULES), held, range, probePort);
    assert.deepEqual(got, [
      { protocol: "tcp", hostIp: "127.0.0.1", hostPort: base + 2, guestPort: 2 },
      { protocol: "tcp", hostIp: "127.0.0.1", hostPort: base + 3, guestPort: 1 },
    ]);
    await rejectsCode(
      assignPorts(portWishes([{ guestPort: 1 }, { guestPort: 2, hostPort: base + 2 }, { guestPort: 3 }], RULES), held, range, probePort),
      "PORT_RANGE_EXHAUSTED",
      "exposed_ports[2].host_port",
    );
    // A UDP port is another port: the whole range is free for it.
    const udp = await assignPorts(portWishes([{ guestPort: 53, protocol: "udp" }], RULES), held, range, probePort);
    assert.equal(udp[0]!.hostPort, base);
  } finally {
    hostHeld.close();
  }
});
