/**
 * The guest's kernel command line network parser (guest/common/netcfg_parse.c) black-box, through
 * guest/tools/netcfg-parse built with ASan/UBSan: what it accepts, that it rejects garbage as a
 * whole (a guest is never half configured), and that it reads what the host's builder writes.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { join } from "node:path";
import { before, test } from "node:test";
import { GUEST_DIR } from "./harness.js";
import { buildKernelArgs } from "../../src/vmm/kernel-args.js";

const TOOL = join(GUEST_DIR, "build/netcfg-parse");

function hasClang(): boolean {
  return spawnSync("clang", ["--version"], { stdio: "ignore" }).status === 0;
}
const skip = !hasClang() && "clang is not installed";

before(() => {
  if (!skip) execFileSync("make", ["-s", "-C", GUEST_DIR, "tools"], { stdio: "inherit" });
});

function parse(cmdline: string): { status: number | null; out: string } {
  const r = spawnSync(TOOL, [cmdline], { encoding: "utf8", timeout: 10_000 });
  assert.equal(r.signal, null, `no crash on ${JSON.stringify(cmdline)}: ${r.stderr}`);
  assert.equal(r.stderr, "", "no sanitizer report");
  return { status: r.status, out: r.stdout.trim() };
}

test("reads every parameter; the last occurrence wins; `--` ends the kernel's part", { skip }, () => {
  assert.deepEqual(parse("quiet hf.ip=10.0.0.2/24 hf.gw=10.0.0.1 hf.mtu=1400 hf.dns=1.1.1.1,8.8.8.8,9.9.9.9 hf.mac=52:54:00:AB:cd:01 rw"), {
    status: 0,
    out: "ip 10.0.0.2/24 gw 10.0.0.1 mtu 1400 dns 1.1.1.1,8.8.8.8,9.9.9.9 mac 52:54:00:ab:cd:01",
  });
  assert.deepEqual(parse("hf.ip=10.0.0.2/24 hf.ip=10.0.0.3/16\n"), { status: 0, out: "ip 10.0.0.3/16" });
  assert.deepEqual(parse("\thf.ip=10.0.0.2/24 -- hf.ip=garbage"), { status: 0, out: "ip 10.0.0.2/24" });
  assert.deepEqual(parse("hf.ip=10.9.9.9/32"), { status: 0, out: "ip 10.9.9.9/32" });
});

test("without hf.ip: nothing to do (a VM without a network boots as before)", { skip }, () => {
  for (const line of ["", "   ", "console=hvc0 root=/dev/vda rw quiet hf.hostname=vm_a", "hf.ipx=1 xhf.ip=10.0.0.2/24", "-- hf.ip=10.0.0.2/24"]) {
    assert.deepEqual(parse(line), { status: 0, out: "none" }, JSON.stringify(line));
  }
});

test("garbage is rejected as a whole, with the reason", { skip }, () => {
  const bad: [string, RegExp][] = [
    ["hf.ip=", /hf\.ip: empty/],
    ["hf.ip=10.0.0.2", /want an IPv4 address\/prefix/],
    ["hf.ip=10.0.0.2/0", /want an IPv4 address\/prefix/],
    ["hf.ip=10.0.0.2/33", /want an IPv4 address\/prefix/],
    ["hf.ip=10.0.0.2/024", /want an IPv4 address\/prefix/],
    ["hf.ip=10.0.0.2/24/1", /want an IPv4 address\/prefix/],
    ["hf.ip=010.0.0.2/24", /want an IPv4 address\/prefix/],
    ["hf.ip=10.0.0.256/24", /want an IPv4 address\/prefix/],
    ["hf.ip=10.0.0/24", /want an IPv4 address\/prefix/],
    ["hf.ip=10.0.0.2.1/24", /want an IPv4 address\/prefix/],
    ["hf.ip=1000.0.0.2/24", /want an IPv4 address\/prefix/],
    ["hf.ip=10.0.0.0/24", /not a usable host address/],
    ["hf.ip=10.0.0.255/24", /not a usable host address/],
    ["hf.ip=127.0.0.2/8", /not a usable host address/],
    ["hf.ip=239.1.1.1/24", /not a usable host address/],
    ["hf.ip=10.0.0.2/24 hf.gw=10.0.1.1", /hf\.gw: not another address/],
    ["hf.ip=10.0.0.2/24 hf.gw=10.0.0.2", /hf\.gw: not another address/],
    ["hf.ip=10.0.0.2/24 hf.gw=x", /hf\.gw=x: want an IPv4/],
    ["hf.ip=10.0.0.2/24 hf.mtu=67", /hf\.mtu=67: want 68-65535/],
    ["hf.ip=10.0.0.2/24 hf.mtu=65536", /want 68-65535/],
    ["hf.ip=10.0.0.2/24 hf.mtu=99999999999999999999", /want 68-65535/],
    ["hf.ip=10.0.0.2/24 hf.mtu=-1", /want 68-65535/],
    ["hf.ip=10.0.0.2/24 hf.dns=1.1.1.1,", /hf\.dns=.*want 1-3/],
    ["hf.ip=10.0.0.2/24 hf.dns=,1.1.1.1", /want 1-3/],
    ["hf.ip=10.0.0.2/24 hf.dns=1.1.1.1,2.2.2.2,3.3.3.3,4.4.4.4", /want 1-3/],
    ["hf.ip=10.0.0.2/24 hf.mac=52:54:00:ab:cd", /hf\.mac=.*want xx:/],
    ["hf.ip=10.0.0.2/24 hf.mac=52-54-00-ab-cd-01", /want xx:/],
    ["hf.ip=10.0.0.2/24 hf.mac=zz:54:00:ab:cd:01", /want xx:/],
    ["hf.ip=10.0.0.2/24 hf.mac=01:00:5e:00:00:01", /multicast/],
    ["hf.gw=10.0.0.1", /without hf\.ip/],
    ["hf.dns=1.1.1.1 hf.mtu=1400", /without hf\.ip/],
    [`hf.ip=${"1".repeat(5000)}`, /longer than 64 bytes/],
    ["hf.ip=10.0.0.2/24 hf.dns=\u00ff\u00fe", /want 1-3/],
  ];
  for (const [line, why] of bad) {
    const r = parse(line);
    assert.equal(r.status, 1, `${JSON.stringify(line.slice(0, 80))} rejected, got ${r.out}`);
    assert.match(r.out, /^error /);
    assert.match(r.out, why, JSON.stringify(line.slice(0, 80)));
    assert.ok(r.out.length < 200, "the reason quotes a bounded part of the value");
  }
});

test("reads exactly what the host's builder writes", { skip }, () => {
  const line = buildKernelArgs({
    hostname: "vm_a",
    tscKhz: 2_000_000,
    net: { address: "10.213.0.2/24", gateway: "10.213.0.1", mtu: 1450, dns: ["10.213.0.1", "9.9.9.9"], mac: "02:AA:00:00:00:07" },
  });
  assert.deepEqual(parse(line), { status: 0, out: "ip 10.213.0.2/24 gw 10.213.0.1 mtu 1450 dns 10.213.0.1,9.9.9.9 mac 02:aa:00:00:00:07" });
});
