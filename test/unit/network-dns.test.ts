/** Guest resolvers (src/network/dns.ts): the resolv.conf parser and the choice between sources, over fixture files. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { chooseResolvers, parseResolvConf, RESOLV_CONF, SYSTEMD_RESOLV_CONF } from "../../src/network/dns.js";

const fixture = (name: string) => readFileSync(new URL(`./fixtures/resolv/${name}`, import.meta.url), "utf8");

/** A reader serving fixtures in place of the host's files; unlisted paths cannot be read. */
function files(map: Record<string, string>): (path: string) => string | undefined {
  return (path) => (path in map ? fixture(map[path]!) : undefined);
}

test("parseResolvConf: IPv4 nameserver lines in order, comments and IPv6 skipped", () => {
  assert.deepEqual(parseResolvConf(fixture("plain.conf")), ["10.255.255.53", "10.255.255.54", "169.254.169.253"]);
  assert.deepEqual(parseResolvConf(fixture("systemd-stub.conf")), ["127.0.0.53"]);
  assert.deepEqual(parseResolvConf(""), []);
  assert.deepEqual(parseResolvConf("nameserver 010.1.1.1\nnameserver 300.1.1.1\nnameserver\n"), []);
});

test("HYPERFLEET_DNS wins over the host's files", () => {
  const c = chooseResolvers(["9.9.9.9", "1.1.1.1"], files({ [RESOLV_CONF]: "plain.conf" }));
  assert.deepEqual(c, { servers: ["9.9.9.9", "1.1.1.1"], source: "HYPERFLEET_DNS" });
});

test("the host's resolv.conf: only servers a guest can reach (not link-local or loopback)", () => {
  const c = chooseResolvers([], files({ [RESOLV_CONF]: "plain.conf", [SYSTEMD_RESOLV_CONF]: "systemd-upstream.conf" }));
  assert.deepEqual(c, { servers: ["10.255.255.53", "10.255.255.54"], source: RESOLV_CONF });
});

test("behind the systemd stub: systemd's upstream servers, deduplicated, at most 3", () => {
  const c = chooseResolvers([], files({ [RESOLV_CONF]: "systemd-stub.conf", [SYSTEMD_RESOLV_CONF]: "systemd-upstream.conf" }));
  assert.deepEqual(c, { servers: ["192.168.1.1", "9.9.9.9", "1.1.1.1"], source: SYSTEMD_RESOLV_CONF });
});

test("nothing usable: an empty list (stub without systemd's file, a local dnsmasq, no file at all)", () => {
  assert.deepEqual(chooseResolvers([], files({ [RESOLV_CONF]: "systemd-stub.conf" })), { servers: [], source: "none" });
  // 127.0.0.1 is not the systemd stub: systemd's file, even if present, is not this host's resolver.
  assert.deepEqual(chooseResolvers([], files({ [RESOLV_CONF]: "dnsmasq.conf", [SYSTEMD_RESOLV_CONF]: "systemd-upstream.conf" })), { servers: [], source: "none" });
  assert.deepEqual(chooseResolvers([], files({})), { servers: [], source: "none" });
});
