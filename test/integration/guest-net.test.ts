/**
 * A real VM configures its network from the kernel command line (hf.ip= and friends, applied by
 * the agent over rtnetlink): address, MTU, default route, /etc/resolv.conf, /etc/hosts, and a ping
 * both ways. Everything runs inside a network namespace this test creates, holding the TAP the
 * VM's NIC uses and the "host side" address 10.213.0.1/24: no packet leaves that namespace. QEMU
 * is started by the real driver, through a wrapper that runs it under `ip netns exec`.
 *
 * Needs root, iproute2, qemu-system-x86_64 and the guest assets of `npm run setup` in
 * HYPERFLEET_DATA_DIR (default /var/lib/hyperfleet).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import type { AgentClient } from "../../src/agent/client.js";
import type { VmHandle, VmSpec } from "../../src/core/ports/vmm-driver.js";
import { MANIFEST_FILE } from "../../src/assets/index.js";
import { connectAgent } from "../../src/vmm/boot.js";
import { hostTscKhz } from "../../src/vmm/host.js";
import { isAlive } from "../../src/vmm/process.js";
import { QemuDriver } from "../../src/vmm/qemu/driver.js";
import { DriverRegistry, guestAssetsIn } from "../../src/vmm/registry.js";
import { buildVmSpec, resolveBootPaths } from "../../src/vmm/spec.js";
import { dataDir, leftoverQemu, tempRunDir } from "./helpers.js";

const IP = "/usr/sbin/ip";
const QEMU = "/usr/bin/qemu-system-x86_64";
/** The host's ping: busybox's, as the guest's (iputils is not always installed). */
const BUSYBOX = "/usr/bin/busybox";
const BOOT_MS = 90_000;
const NS = `hf-test-${randomBytes(4).toString("hex")}`;
const TAP = "hftap0";
const MAC = "02:68:66:00:00:2a";
const HOST_ADDR = "10.213.0.1";
const GUEST_ADDR = "10.213.0.2";
const MTU = 1400;

function why(): string | null {
  if (process.getuid?.() !== 0) return "needs root (network namespaces, TAP devices)";
  if (!existsSync(IP)) return `${IP} is not installed (iproute2)`;
  if (!existsSync(QEMU)) return `${QEMU} is not installed`;
  if (!existsSync(BUSYBOX)) return `${BUSYBOX} is not installed`;
  if (!existsSync(join(dataDir(), MANIFEST_FILE))) return `no guest assets in ${dataDir()} (npm run setup)`;
  return null;
}
const skip = why();

/** `ip` inside the test's namespace only (-n): nothing here touches the root namespace's network. */
function ipNs(...args: string[]): string {
  return execFileSync(IP, ["-n", NS, ...args], { encoding: "utf8" });
}

let nsMade = false;
let handle: VmHandle | null = null;
let agent: AgentClient | null = null;
let spec: VmSpec | null = null;

before(async () => {
  if (skip) return;
  execFileSync(IP, ["netns", "add", NS]);
  nsMade = true;
  ipNs("link", "set", "lo", "up");
  ipNs("tuntap", "add", "dev", TAP, "mode", "tap");
  ipNs("addr", "add", `${HOST_ADDR}/24`, "dev", TAP);
  ipNs("link", "set", TAP, "mtu", String(MTU), "up");

  const runDir = await tempRunDir();
  // The driver's VMM binary: QEMU, exec'd inside the namespace (same pid, so kill() and the
  // pidfile still name QEMU). Absolute paths: the driver gives QEMU no environment but PATH.
  const wrapper = join(runDir, "qemu-in-ns");
  writeFileSync(wrapper, `#!/bin/sh\nexec ${IP} netns exec ${NS} ${QEMU} "$@"\n`);
  chmodSync(wrapper, 0o755);

  const assets = await guestAssetsIn(dataDir())();
  const nics = [{ tap: TAP, mac: MAC }];
  const boot = resolveBootPaths({}, assets, { nics, vsock: false });
  const registry = new DriverRegistry({ kind: "qemu", accel: "tcg", cacheDir: dataDir(), assets: async () => assets });
  spec = buildVmSpec({
    id: `vm_net${process.pid}`,
    vcpuCount: 1,
    memSizeMib: 256,
    boot,
    rootDisk: await registry.disks.rootDisk(boot.rootfsPath, runDir),
    devices: { nics, vsock: false },
    guestNet: { address: `${GUEST_ADDR}/24`, gateway: HOST_ADDR, mtu: MTU, dns: [HOST_ADDR, "10.213.0.53"], mac: MAC },
    runDir,
    tscKhz: hostTscKhz(),
  });
  handle = await new QemuDriver({ accel: "tcg", qemuBinary: wrapper }).start(spec);
  agent = await connectAgent(handle, BOOT_MS, undefined, { fresh: true });
});

after(async () => {
  agent?.close();
  if (handle && (await isAlive(handle.pid))) await handle.kill();
  if (spec) await rm(spec.runDir, { recursive: true, force: true });
  if (nsMade) execFileSync(IP, ["netns", "del", NS]);
  if (!skip) {
    assert.deepEqual(await leftoverQemu(), [], "no QEMU outlives the test");
    assert.ok(!execFileSync(IP, ["netns", "list"], { encoding: "utf8" }).includes(NS), "the namespace is gone");
  }
});

async function sh(script: string): Promise<string> {
  const r = await agent!.exec(["sh", "-c", script]);
  assert.equal(r.exitCode, 0, `${script}: ${r.stderr.toString()}${r.stdout.toString()}`);
  return r.stdout.toString();
}

test("the NIC with hf.mac's address is up with hf.ip's address and hf.mtu", { skip: skip ?? false, timeout: BOOT_MS }, async () => {
  const name = (await sh(`for d in /sys/class/net/*; do [ "$(cat $d/address)" = ${MAC} ] && basename $d; done; true`)).trim();
  assert.equal(name, "eth0");
  assert.equal((await sh("cat /sys/class/net/eth0/mtu")).trim(), String(MTU));
  // IFF_UP; not operstate, which the kernel's linkwatch updates up to a second later.
  assert.equal(Number(await sh("cat /sys/class/net/eth0/flags")) & 1, 1, "eth0 is up");
  assert.match(await sh("ip -4 addr show dev eth0"), new RegExp(`inet ${GUEST_ADDR.replaceAll(".", "\\.")}/24 brd 10\\.213\\.0\\.255 `));
});

test("the default route goes via hf.gw on eth0", { skip: skip ?? false, timeout: BOOT_MS }, async () => {
  // /proc/net/route, not `ip route`: the kernel's own table, little-endian hex.
  const routes = (await sh("cat /proc/net/route")).split("\n").slice(1).map((l) => l.split("\t"));
  const dflt = routes.filter((r) => r[1] === "00000000" && r[7] === "00000000");
  assert.deepEqual(dflt.map((r) => [r[0], r[2]]), [["eth0", "0100D50A"]], "one default route, via 10.213.0.1");
});

test("/etc/resolv.conf names hf.dns's servers; /etc/hosts maps localhost and the hostname", { skip: skip ?? false, timeout: BOOT_MS }, async () => {
  const resolv = await sh("cat /etc/resolv.conf");
  assert.deepEqual(resolv.split("\n").filter((l) => l.startsWith("nameserver")), [`nameserver ${HOST_ADDR}`, "nameserver 10.213.0.53"]);
  const hosts = (await sh("cat /etc/hosts")).split("\n").map((l) => l.split(/\s+/));
  assert.deepEqual(hosts.find((l) => l[0] === "127.0.0.1"), ["127.0.0.1", "localhost"]);
  assert.deepEqual(hosts.find((l) => l[0] === GUEST_ADDR), [GUEST_ADDR, spec!.id]);
  assert.equal((await sh("hostname")).trim(), spec!.id);
});

test("the guest and the namespace reach each other (ping both ways)", { skip: skip ?? false, timeout: BOOT_MS }, async () => {
  assert.match(await sh(`ping -c 1 -W 10 ${HOST_ADDR}`), /1 packets received/);
  const r = spawnSync(IP, ["netns", "exec", NS, BUSYBOX, "ping", "-c", "1", "-W", "10", GUEST_ADDR], { encoding: "utf8", timeout: 20_000 });
  assert.equal(r.status, 0, `ping from the namespace: ${r.stdout}${r.stderr}`);
});

test("IDENTITY renames the hostname in the /etc/hosts netcfg wrote: the new name resolves to the guest's address", { skip: skip ?? false, timeout: BOOT_MS }, async () => {
  await agent!.setIdentity({ hostname: "clone-abc" });
  assert.equal((await sh("hostname")).trim(), "clone-abc");
  const hosts = (await sh("cat /etc/hosts")).split("\n").map((l) => l.split(/\s+/));
  assert.deepEqual(hosts.find((l) => l[0] === GUEST_ADDR), [GUEST_ADDR, "clone-abc"]);
  assert.equal(hosts.filter((l) => l.includes(spec!.id)).length, 0, "the old name is gone");
  // Name resolution agrees with `hostname`: the guest's own resolver (busybox ping) finds the address.
  assert.match(await sh("ping -c 1 -W 10 clone-abc"), new RegExp(`^PING clone-abc \\(${GUEST_ADDR.replaceAll(".", "\\.")}\\)`));
});
