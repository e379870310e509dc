/**
 * Issue 10, isolation: a VM reaches neither the host (the API port, nor a service listening on
 * every host address) nor another VM, unless both share a private network. Inside this file's own
 * namespaces (netns.ts). Three VMs, each serving busybox httpd on 8080: `lone` (no private
 * network), `pa` and `pb` (private network "pn"). Every "cannot" stands beside a "can" in the
 * same guest, so a blocked probe means a rule, not a dead network or a server that is not up.
 */
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { vmSkipReason } from "../api/helpers.js";
import { blocked, probeAll, reached, startNetDaemon, type NetDaemon, type NetMachine } from "./daemon.js";
import { inTestNetns, netnsSkipReason } from "./netns.js";
import { startOutside, type Outside } from "./outside.js";
import { httpBody, WORLD } from "./topology.js";

const net = await inTestNetns(import.meta.url, { outside: true });
const skip = netnsSkipReason() ?? vmSkipReason() ?? false;
const T = { skip, timeout: 180_000 };
const HTTPD = 8080;
const SERVICE_BODY = "host service\n";
/** The guest's gateway: the VM namespace's end of the TAP. */
const TAP_GATEWAY = "169.254.0.22";

let outside: Outside | undefined;
let nd: NetDaemon | undefined;
/** A host service on every address of the host namespace (0.0.0.0). */
let service: Server | undefined;
let servicePort = 0;
let apiPort = 0;
let lone: NetMachine;
let pa: NetMachine;
let pb: NetMachine;

before(async () => {
  if (!net || skip) return;
  outside = await startOutside(net);
  service = createServer((_req, res) => res.end(SERVICE_BODY));
  await new Promise<void>((resolve) => service!.listen(0, "0.0.0.0", resolve));
  servicePort = (service.address() as AddressInfo).port;
  nd = await startNetDaemon();
  apiPort = Number(new URL(nd.d.url).port);
  const pn = `pn-${net.names.run}`;
  [lone, pa, pb] = await Promise.all([
    nd.boot({ name: "lone" }),
    nd.boot({ name: "pa", network: { private_network: pn } }),
    nd.boot({ name: "pb", network: { private_network: pn } }),
  ]);
  for (const m of [lone, pa, pb]) {
    const r = await nd.sh(m.id, `mkdir -p /tmp/www && echo "httpd in ${m.name}" > /tmp/www/index.html && httpd -p ${HTTPD} -h /tmp/www`);
    assert.equal(r.exit_code, 0, `httpd in ${m.name}: ${r.stdout}${r.stderr}`);
  }
});

after(async () => {
  try {
    await nd?.close();
  } finally {
    service?.closeAllConnections();
    service?.close();
    await outside?.stop();
  }
});

/** Bounded by probeAll's `timeout` (busybox 1.35's `wget -T` crashes in the guest). */
const wget = (host: string, port: number, path = "/") => `wget -q -O - http://${host}:${port}${path}`;
const page = (m: NetMachine) => `httpd in ${m.name}\n`;

test("the host namespace reaches each VM by its address (the control for the blocked probes below)", T, async () => {
  for (const m of [lone, pa, pb]) {
    const res = await fetch(`http://${m.network!.ip}:${HTTPD}/`, { signal: AbortSignal.timeout(10_000) });
    assert.equal(await res.text(), page(m));
  }
});

test("a VM reaches the outside but no host service, on any host address, nor the API port", T, async () => {
  const r = await probeAll(nd!, lone.id, {
    outside: wget(WORLD.outside, 80),
    uplink: wget(WORLD.host, servicePort),
    ownGateway: wget(lone.network!.gateway, servicePort),
    otherGateway: wget(pa.network!.gateway, servicePort),
    tapGateway: wget(TAP_GATEWAY, servicePort),
    apiViaGateway: wget(lone.network!.gateway, apiPort, "/health"),
    apiViaUplink: wget(WORLD.host, apiPort, "/health"),
  });
  reached(r.outside, httpBody(WORLD.outside), "the control: the outside host");
  for (const k of ["uplink", "ownGateway", "otherGateway", "tapGateway"]) blocked(r[k], SERVICE_BODY, `the host service via ${k}`);
  for (const k of ["apiViaGateway", "apiViaUplink"]) blocked(r[k], '"status":"ok"', `the API via ${k}`);
});

test("VMs on one private network reach each other by address; a VM outside it reaches neither, nor they it", T, async () => {
  const [fromLone, fromPa, fromPb] = await Promise.all([
    probeAll(nd!, lone.id, { pa: wget(pa.network!.ip, HTTPD), pb: wget(pb.network!.ip, HTTPD) }),
    probeAll(nd!, pa.id, { pb: wget(pb.network!.ip, HTTPD), lone: wget(lone.network!.ip, HTTPD) }),
    probeAll(nd!, pb.id, { pa: wget(pa.network!.ip, HTTPD) }),
  ]);
  reached(fromPa.pb, page(pb), "pa -> pb (one private network)");
  reached(fromPb.pa, page(pa), "pb -> pa (one private network)");
  blocked(fromPa.lone, page(lone), "pa -> lone");
  blocked(fromLone.pa, page(pa), "lone -> pa");
  blocked(fromLone.pb, page(pb), "lone -> pb");
});

test("a VM that routes 127.0.0.1 through its gateway (route_localnet on) reaches neither the API nor a host service", T, async () => {
  // pb's own loopback goes: this runs last in the file.
  const setup = [
    "echo 1 > /proc/sys/net/ipv4/conf/all/route_localnet",
    "echo 1 > /proc/sys/net/ipv4/conf/eth0/route_localnet",
    "ip route del 127.0.0.0/8 table local",
    "ip route del 127.0.0.1 table local",
    `ip route add 127.0.0.1/32 via ${TAP_GATEWAY} dev eth0`,
    "ip route get 127.0.0.1",
  ].join(" && ");
  const s = await nd!.sh(pb.id, setup);
  assert.match(s.stdout, new RegExp(`127\\.0\\.0\\.1 via ${TAP_GATEWAY.replaceAll(".", "\\.")} dev eth0`), `the trick is in place: ${s.stdout}${s.stderr}`);
  const r = await probeAll(nd!, pb.id, { api: wget("127.0.0.1", apiPort, "/health"), service: wget("127.0.0.1", servicePort), outside: wget(WORLD.outside, 80) });
  reached(r.outside, httpBody(WORLD.outside), "the control: the outside host");
  blocked(r.api, '"status":"ok"', "the API on 127.0.0.1 through the gateway");
  blocked(r.service, SERVICE_BODY, "the host service on 127.0.0.1 through the gateway");
});
