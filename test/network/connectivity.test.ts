/**
 * Issue 10, connectivity: inside this file's own namespaces (netns.ts), a real daemon boots real VMs
 * whose traffic leaves through NAT to a simulated outside host (203.0.113.1, TEST-NET-3, which
 * exists only in our namespaces). Three VMs:
 *   open:    the default network with deny_out 203.0.113.99/32, an exposed TCP port for busybox
 *            httpd and an exposed UDP port for udp-echo (test/fixtures/udp-echo.c);
 *   closed:  internet false, and an exposed port for busybox httpd;
 *   offline: `"network": false`.
 */
import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { readFile } from "node:fs/promises";
import { after, before, test } from "node:test";
import { vmSkipReason } from "../api/helpers.js";
import { blocked, probeAll, reached, startNetDaemon, type NetDaemon, type NetMachine } from "./daemon.js";
import { inTestNetns, netnsSkipReason } from "./netns.js";
import { startOutside, type Outside } from "./outside.js";
import { buildStaticFixture, staticFixtureSkipReason, type Built } from "./static-fixture.js";
import { httpBody, WORLD } from "./topology.js";

const net = await inTestNetns(import.meta.url, { outside: true });
const skip = netnsSkipReason() ?? vmSkipReason() ?? staticFixtureSkipReason() ?? false;
const T = { skip, timeout: 180_000 };
const HTTPD_PORT = 8080;
const UDP_PORT = 5353;

let outside: Outside | undefined;
let nd: NetDaemon | undefined;
let open: NetMachine;
let closed: NetMachine;
let offline: NetMachine;
let udpEcho: Built | undefined;

before(async () => {
  if (!net || skip) return;
  outside = await startOutside(net);
  udpEcho = await buildStaticFixture("udp-echo");
  nd = await startNetDaemon();
  [open, closed] = await Promise.all([
    nd.boot({ network: { deny_out: [`${WORLD.denied}/32`] }, exposed_ports: [{ guest_port: HTTPD_PORT }, { guest_port: UDP_PORT, protocol: "udp" }] }),
    nd.boot({ network: { internet: false }, exposed_ports: [{ guest_port: HTTPD_PORT }] }),
  ]);
  offline = await nd.boot({ network: false });
});

after(async () => {
  try {
    await nd?.close();
  } finally {
    await outside?.stop();
    await udpEcho?.remove();
  }
});

/**
 * wget of `url` from the guest, bounded by busybox `timeout` (busybox 1.35's own `wget -T`
 * crashes with SIGSEGV in the guest, so it is not used).
 */
const wget = (url: string, s = 10) => `timeout ${s} wget -q -O - ${url}`;

test("the machine JSON shows its network; the guest has 169.254.0.21/30 on eth0 and the test's DNS server", T, async () => {
  assert.ok(open.network, `network: ${JSON.stringify(open.network)}`);
  assert.match(open.network.ip, /^\d+\.\d+\.\d+\.\d+$/);
  assert.deepEqual(open.network.dns, [WORLD.outside]);
  assert.equal(open.network.internet, true);
  assert.equal(closed.network?.internet, false);
  assert.notEqual(open.network.ip, closed.network?.ip, "two VMs, two addresses");
  const r = await nd!.sh(open.id, "ip -4 addr show dev eth0; echo ==; cat /etc/resolv.conf");
  assert.equal(r.exit_code, 0, r.stderr);
  const [addr, resolv] = r.stdout.split("==\n");
  assert.match(addr!, /inet 169\.254\.0\.21\/30 /);
  assert.deepEqual(resolv!.split("\n").filter((l) => l.startsWith("nameserver")), [`nameserver ${WORLD.outside}`]);
});

test("the guest resolves a name through the test's DNS server and reaches the outside host through NAT", T, async () => {
  const r = await nd!.sh(open.id, `nslookup outside.hyperfleet.test; echo ==; ${wget(`http://${WORLD.outside}/nat`)}`);
  const [dns, http] = r.stdout.split("==\n");
  assert.match(dns!, new RegExp(`Address:\\s+${WORLD.outside.replaceAll(".", "\\.")}\\s*$`, "m"), `nslookup: ${r.stdout}${r.stderr}`);
  assert.ok(outside!.log().includes("dns outside.hyperfleet.test 1"), `the DNS server saw no A question: ${outside!.log().join("; ")}`);
  assert.equal(http, httpBody(WORLD.outside), `wget: ${r.stdout}${r.stderr}`);
  // Masqueraded on the way out: the outside host sees the host namespace's uplink address.
  assert.ok(outside!.log().includes(`http ${WORLD.outside} /nat ${WORLD.host}`), outside!.log().join("; "));
});

test("deny_out blocks 203.0.113.99 while 203.0.113.1 stays reachable (and .99 itself serves)", T, async () => {
  const fromHost = await fetch(`http://${WORLD.denied}/from-host`, { signal: AbortSignal.timeout(10_000) });
  assert.equal(await fromHost.text(), httpBody(WORLD.denied), "the denied address serves the host namespace");
  const r = await probeAll(nd!, open.id, { allowed: wget(`http://${WORLD.outside}/ok`), denied: wget(`http://${WORLD.denied}/denied`) });
  reached(r.allowed, httpBody(WORLD.outside), "203.0.113.1 (not in deny_out)");
  blocked(r.denied, httpBody(WORLD.denied), "203.0.113.99 (deny_out)");
  assert.ok(!outside!.log().some((l) => l.startsWith(`http ${WORLD.denied} /denied`)), "the denied request reached the outside host");
});

async function startHttpd(m: NetMachine): Promise<void> {
  const r = await nd!.sh(m.id, `mkdir -p /tmp/www && echo "httpd in ${m.name}" > /tmp/www/index.html && httpd -p ${HTTPD_PORT} -h /tmp/www`);
  assert.equal(r.exit_code, 0, `httpd: ${r.stdout}${r.stderr}`);
}

/** GET through the machine's exposed port from the host namespace, retried while httpd starts. */
async function viaExposedPort(m: NetMachine): Promise<string> {
  const port = m.exposed_ports.find((p) => p.guest_port === HTTPD_PORT);
  assert.ok(port, `no exposed port for ${HTTPD_PORT}: ${JSON.stringify(m.exposed_ports)}`);
  assert.equal(port.host_ip, "127.0.0.1", "bound to loopback by default");
  let last = "";
  for (const deadline = Date.now() + 20_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 250))) {
    try {
      const res = await fetch(`http://127.0.0.1:${port.host_port}/`, { signal: AbortSignal.timeout(5000) });
      return await res.text();
    } catch (err) {
      last = String((err as Error).cause ?? err);
    }
  }
  throw new Error(`127.0.0.1:${port.host_port} -> ${m.name}:${HTTPD_PORT} did not answer in 20 s: ${last}`);
}

test("busybox httpd in the guest answers through its exposed host port", T, async () => {
  await startHttpd(open);
  assert.equal(await viaExposedPort(open), `httpd in ${open.name}\n`);
});

test("internet: false blocks the outside host while the exposed port still serves", T, async () => {
  const r = await probeAll(nd!, closed.id, { outside: wget(`http://${WORLD.outside}/closed`) });
  blocked(r.outside, httpBody(WORLD.outside), "the outside host with internet: false");
  assert.ok(!outside!.log().some((l) => l.includes("/closed")), "the request reached the outside host");
  await startHttpd(closed);
  assert.equal(await viaExposedPort(closed), `httpd in ${closed.name}\n`);
});

/** One datagram to 127.0.0.1:port and its echo, or null after timeoutMs. */
function udpRoundTrip(port: number, payload: string, timeoutMs: number): Promise<string | null> {
  return new Promise((resolve) => {
    const sock = createSocket("udp4");
    const done = (v: string | null) => {
      clearTimeout(timer);
      sock.close();
      resolve(v);
    };
    const timer = setTimeout(() => done(null), timeoutMs);
    sock.on("message", (m) => done(m.toString()));
    sock.on("error", () => done(null));
    sock.send(payload, port, "127.0.0.1");
  });
}

test("a UDP exposed port: a datagram to 127.0.0.1:<host_port> reaches the guest and its answer comes back", T, async () => {
  const port = open.exposed_ports.find((p) => p.protocol === "udp");
  assert.ok(port, `no UDP port: ${JSON.stringify(open.exposed_ports)}`);
  assert.equal(port.guest_port, UDP_PORT);
  await nd!.upload(open.id, "/tmp/udp-echo", await readFile(udpEcho!.path), "0755");
  const r = await nd!.sh(open.id, `setsid /tmp/udp-echo ${UDP_PORT} </dev/null >/tmp/udp-echo.log 2>&1 &`);
  assert.equal(r.exit_code, 0, `start udp-echo: ${r.stdout}${r.stderr}`);
  // Retried while udp-echo starts in the guest (a datagram sent before it binds is lost).
  let got: string | null = null;
  for (let i = 0; i < 40 && got === null; i++) got = await udpRoundTrip(port.host_port, `ping-${i}`, 500);
  assert.match(got ?? "", /^ping-\d+$/, `no echo through udp 127.0.0.1:${port.host_port}: ${(await nd!.sh(open.id, "cat /tmp/udp-echo.log")).stdout}`);
  // Once it listens, every datagram comes back.
  for (let i = 0; i < 5; i++) assert.equal(await udpRoundTrip(port.host_port, `again-${i}`, 2000), `again-${i}`);
});

test('"network": false: the machine shows no network and its guest has no NIC, only loopback', T, async () => {
  assert.equal(offline.network, null);
  assert.deepEqual(offline.exposed_ports, []);
  const r = await nd!.sh(offline.id, "ls /sys/class/net");
  assert.equal(r.exit_code, 0, r.stderr);
  assert.deepEqual(r.stdout.trim().split(/\s+/), ["lo"]);
});
