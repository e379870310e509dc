/**
 * The network test harness itself: this file runs inside its own namespaces (netns.ts), sees only
 * them, and the outside world answers DNS and HTTP. No VM: this is what the VM tests stand on.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createSocket } from "node:dgram";
import { after, before, test } from "node:test";
import { buildQuery, parseQuery } from "./dns-wire.js";
import { inTestNetns, IP, netnsSkipReason } from "./netns.js";
import { startOutside, type Outside } from "./outside.js";
import { DNS_NAMES, httpBody, WORLD } from "./topology.js";

const net = await inTestNetns(import.meta.url, { outside: true });
const skip = netnsSkipReason() ?? false;

let outside: Outside | undefined;
before(async () => {
  if (net) outside = await startOutside(net);
});
after(async () => {
  await outside?.stop();
});

test("this process is in the test's host namespace, which has only lo and the uplink", { skip }, () => {
  const links = execFileSync(IP, ["-o", "link", "show"], { encoding: "utf8" });
  const names = links.split("\n").filter(Boolean).map((l) => l.split(": ")[1]!.split("@")[0]);
  assert.deepEqual(names.sort(), ["lo", WORLD.hostIf].sort());
  assert.match(execFileSync(IP, ["route", "show", "default"], { encoding: "utf8" }), new RegExp(`default via ${WORLD.outside} `));
});

test("the outside HTTP servers answer on both addresses", { skip }, async () => {
  for (const addr of [WORLD.outside, WORLD.denied]) {
    const res = await fetch(`http://${addr}/probe`, { signal: AbortSignal.timeout(10_000) });
    assert.equal(await res.text(), httpBody(addr));
  }
  assert.ok(outside!.log().some((l) => l.startsWith(`http ${WORLD.outside} /probe ${WORLD.host}`)), outside!.log().join("\n"));
});

async function ask(name: string): Promise<Buffer> {
  const sock = createSocket("udp4");
  try {
    return await new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no DNS answer for ${name} in 5 s`)), 5000);
      sock.once("message", (m) => (clearTimeout(timer), resolve(m)));
      sock.send(buildQuery(0x4242, name), 53, WORLD.outside);
    });
  } finally {
    sock.close();
  }
}

test("the outside DNS server answers known names with their A record and others with NXDOMAIN", { skip }, async () => {
  const known = await ask("outside.hyperfleet.test");
  assert.equal(known.readUInt16BE(0), 0x4242);
  assert.equal(known.readUInt16BE(2) & 0xf, 0, "NOERROR");
  assert.equal(known.readUInt16BE(6), 1, "one answer");
  assert.equal([...known.subarray(known.length - 4)].join("."), DNS_NAMES["outside.hyperfleet.test"]);
  const unknown = await ask("nowhere.hyperfleet.test");
  assert.equal(unknown.readUInt16BE(2) & 0xf, 3, "NXDOMAIN");
  assert.equal(unknown.readUInt16BE(6), 0);
});

test("the DNS parser refuses what is not one plain question", () => {
  assert.equal(parseQuery(Buffer.alloc(5)), null);
  assert.equal(parseQuery(Buffer.alloc(600)), null);
  const q = buildQuery(1, "a.b");
  assert.equal(parseQuery(q)?.name, "a.b");
  const response = Buffer.from(q);
  response.writeUInt16BE(0x8180, 2);
  assert.equal(parseQuery(response), null);
  const pointer = Buffer.concat([q.subarray(0, 12), Buffer.from([0xc0, 0x0c, 0, 1, 0, 1])]);
  assert.equal(parseQuery(pointer), null);
  assert.equal(parseQuery(q.subarray(0, q.length - 2)), null);
});
