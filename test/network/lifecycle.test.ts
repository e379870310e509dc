/**
 * Networked machines through a real daemon (child process, inside this file's own namespaces:
 * netns.ts), booting real VMs:
 * - a stop and start keeps the machine's address and host port, and the port serves again;
 * - 100 create/start/delete cycles (two at a time, every 10th one served through its exposed
 *   port) leave nothing on the host: no namespace, veth, tap, per-VM rule, db row or QEMU.
 * Cleanup: machines deleted, the daemon and any VMM of the data dir killed by pid.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { vmSkipReason } from "../api/helpers.js";
import { assertHostClean, assertRulesFor, DaemonHost, getThrough, namespacesOf, networkRows } from "./daemon-host.js";
import { inTestNetns, netnsSkipReason } from "./netns.js";

const net = await inTestNetns(import.meta.url);
const skip = netnsSkipReason() ?? vmSkipReason() ?? false;
const CYCLES = Number(process.env.HFT_CYCLES ?? 100);

let h: DaemonHost;
before(async () => {
  if (!net || skip) return;
  h = await DaemonHost.create();
  await h.start();
});
after(async () => {
  await h?.close();
});

test("stop and start keep the address and host port, and the port serves again", { skip }, async () => {
  const m = await h.create("stop-start", true);
  const up = await h.waitFor(m.id, "running");
  await h.serve(m.id, "first-boot");
  assert.equal(await getThrough(m.exposed_ports[0]!), "first-boot");
  assertRulesFor([up]);

  assert.equal((await h.d.fetch("POST", `/machines/${m.id}/stop`)).status, 202);
  await h.waitFor(m.id, "stopped");
  assert.deepEqual(namespacesOf(h.tag), [], "a stopped machine has no namespace");
  assertRulesFor([]);

  assert.equal((await h.d.fetch("POST", `/machines/${m.id}/start`)).status, 202);
  const again = await h.waitFor(m.id, "running");
  assert.deepEqual(again.network, m.network, "same address");
  assert.deepEqual(again.exposed_ports, m.exposed_ports, "same host port");
  await h.serve(m.id, "second-boot");
  assert.equal(await getThrough(m.exposed_ports[0]!), "second-boot");
  assertRulesFor([again]);

  assert.equal((await h.d.fetch("DELETE", `/machines/${m.id}`)).status, 204);
  assertHostClean(h);
  assert.deepEqual(networkRows(h.dataDir), { slots: 0, ports: 0 });
});

test(`${CYCLES} create/start/delete cycles of networked machines leave nothing behind`, { skip, timeout: 30 * 60_000 }, async () => {
  const t0 = Date.now();
  let next = 0;
  const served: number[] = [];
  const worker = async () => {
    for (let i = next++; i < CYCLES; i = next++) {
      const m = await h.create(`cycle-${i}`, true);
      await h.waitFor(m.id, "running");
      if (i % 10 === 9) {
        await h.serve(m.id, `cycle-${i}`);
        assert.equal(await getThrough(m.exposed_ports[0]!), `cycle-${i}`);
        served.push(i);
      }
      const del = await h.d.fetch("DELETE", `/machines/${m.id}`);
      assert.equal(del.status, 204, JSON.stringify(del.body));
    }
  };
  await Promise.all([worker(), worker()]);
  const ms = Date.now() - t0;
  process.stderr.write(`# ${CYCLES} networked create/start/delete cycles (2 at a time): ${(ms / 1000).toFixed(1)} s, ${(ms / CYCLES).toFixed(0)} ms per cycle\n`);
  assert.equal(served.length, Math.floor(CYCLES / 10));
  const list = await h.d.fetch("GET", "/machines");
  assert.deepEqual(list.body, [], "no machine left");
  assertHostClean(h);
  assert.deepEqual(networkRows(h.dataDir), { slots: 0, ports: 0 });
});

test("a stop or delete at any point of a networked start leaves nothing behind", { skip, timeout: 10 * 60_000 }, async () => {
  // From "the boot has not begun" through attach and the VMM's start to "just running".
  const delays = [0, 20, 50, 100, 200, 400, 700, 1000, 1500];
  for (const ms of delays) {
    const m = await h.create(`del-${ms}`, true);
    await new Promise((r) => setTimeout(r, ms));
    const del = await h.d.fetch("DELETE", `/machines/${m.id}`);
    assert.equal(del.status, 204, `delete ${ms} ms into the start: ${JSON.stringify(del.body)}`);
    assertHostClean(h);
  }
  for (const ms of delays) {
    const m = await h.create(`stop-${ms}`, true);
    await new Promise((r) => setTimeout(r, ms));
    const stop = await h.d.fetch("POST", `/machines/${m.id}/stop`);
    assert.equal(stop.status, 202, `stop ${ms} ms into the start: ${JSON.stringify(stop.body)}`);
    await h.waitFor(m.id, "stopped");
    assertHostClean(h);
    assert.equal((await h.d.fetch("DELETE", `/machines/${m.id}`)).status, 204);
  }
  assert.deepEqual(networkRows(h.dataDir), { slots: 0, ports: 0 });
});
