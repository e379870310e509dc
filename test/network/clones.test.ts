/**
 * Snapshot clones on the network (docs/adr/0009, ADR 0008), through a real daemon inside this
 * file's own namespaces (netns.ts): each clone of a networked machine gets its own namespace,
 * address and exposed port while its guest keeps the source's address, MAC and ARP cache (every
 * namespace's gateway has one fixed MAC), so a clone reaches the (simulated) outside at once and the
 * web server running in the source's memory answers through each clone's own port; what one clone
 * serves afterwards is its own.
 * Cleanup: machines deleted, the daemon and any VMM of the data dir killed by pid.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { vmSkipReason } from "../api/helpers.js";
import { assertHostClean, DaemonHost, getThrough, namespacesOf, portOf, type MachineJson } from "./daemon-host.js";
import { inTestNetns, netnsSkipReason } from "./netns.js";
import { startOutside, type Outside } from "./outside.js";
import { httpBody, WORLD } from "./topology.js";

const net = await inTestNetns(import.meta.url, { outside: true });
const skip = netnsSkipReason() ?? vmSkipReason() ?? false;

let h: DaemonHost;
let outside: Outside | undefined;
before(async () => {
  if (!net || skip) return;
  outside = await startOutside(net);
  h = await DaemonHost.create();
  await h.start();
});
after(async () => {
  try {
    await h?.close();
  } finally {
    await outside?.stop();
  }
});

test("clones of a networked machine: own namespace, address and port; the source's server answers through each", { skip, timeout: 300_000 }, async () => {
  const src = await h.create("net-src", true);
  await h.waitFor(src.id, "running");
  await h.serve(src.id, "from-the-source");
  assert.equal(await getThrough(portOf(src, 80)), "from-the-source");

  const s = await h.d.fetch("POST", `/machines/${src.id}/snapshots`);
  assert.equal(s.status, 201, JSON.stringify(s.body));
  const clones: MachineJson[] = [];
  for (const name of ["net-clone-a", "net-clone-b"]) {
    const r = await h.d.fetch("POST", "/machines", { name, snapshot: s.body.id, exposed_ports: [{ guest_port: 80 }], start: true });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    clones.push(await h.waitFor((r.body as unknown as MachineJson).id, "running"));
  }
  const [a, b] = clones as [MachineJson, MachineJson];
  // First traffic of b, outbound: its guest sends to the gateway MAC it knew in the source's
  // namespace, which must be the one its own namespace has.
  const out = await h.d.fetch("POST", `/machines/${b.id}/exec`, { command: ["sh", "-c", `timeout 5 wget -q -O - http://${WORLD.outside}/`] });
  assert.equal(out.status, 200, JSON.stringify(out.body));
  assert.equal(out.body.stdout, httpBody(WORLD.outside), `a clone reaches the outside at once: ${JSON.stringify(out.body)}`);
  const ips = new Set([src, a, b].map((m) => m.network!.ip));
  assert.equal(ips.size, 3, "each machine has its own address on the host");
  assert.equal(a.network!.mac, src.network!.mac, "the restored NIC keeps the source's MAC, and the record says so");
  assert.equal(namespacesOf(h.tag).length, 3, "one namespace per machine");

  // The httpd in the restored memory answers through each clone's own port: the guest's address
  // and its ARP entry for the gateway are right behind the clone's new TAP.
  for (const c of clones) assert.equal(await getThrough(portOf(c, 80)), "from-the-source", `${c.id} serves at once`);
  const w = await h.d.fetch("POST", `/machines/${a.id}/exec`, { command: ["sh", "-c", "echo from-clone-a > /tmp/www/index.html"] });
  assert.equal(w.status, 200, JSON.stringify(w.body));
  assert.equal(await getThrough(portOf(a, 80)), "from-clone-a");
  assert.equal(await getThrough(portOf(b, 80)), "from-the-source", "b is not a");
  assert.equal(await getThrough(portOf(src, 80)), "from-the-source", "the source is not a");

  for (const m of [a, b, src]) assert.equal((await h.d.fetch("DELETE", `/machines/${m.id}`)).status, 204);
  assert.equal((await h.d.fetch("DELETE", `/snapshots/${String(s.body.id)}`)).status, 204);
  assertHostClean(h);
});
