/**
 * The guest network's kernel parameters (src/vmm/guest-net-args.ts): the exact text the guest's
 * parser reads (guest/common/netcfg_parse.c, checked black-box in test/guest/netcfg.test.ts with
 * the same values), and the same rejections, so a bad value fails on the host before a boot.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { HyperfleetError } from "../../src/core/errors.js";
import { guestNetArgs, type GuestNetArgs } from "../../src/vmm/guest-net-args.js";
import { buildKernelArgs } from "../../src/vmm/kernel-args.js";
import { buildVmSpec, resolveBootPaths } from "../../src/vmm/spec.js";
import type { GuestAssets } from "../../src/assets/index.js";

test("every field, in a fixed order; the MAC in lower case", () => {
  assert.deepEqual(guestNetArgs({ address: "10.213.0.2/24", gateway: "10.213.0.1", mtu: 1400, dns: ["1.1.1.1", "8.8.8.8"], mac: "52:54:00:AB:CD:01" }), [
    "hf.ip=10.213.0.2/24",
    "hf.gw=10.213.0.1",
    "hf.mtu=1400",
    "hf.dns=1.1.1.1,8.8.8.8",
    "hf.mac=52:54:00:ab:cd:01",
  ]);
});

test("only the address is required; an empty dns list adds nothing", () => {
  assert.deepEqual(guestNetArgs({ address: "192.168.7.9/30", dns: [] }), ["hf.ip=192.168.7.9/30"]);
  assert.deepEqual(guestNetArgs({ address: "10.0.0.5/32" }), ["hf.ip=10.0.0.5/32"], "a /32 has no network or broadcast address");
});

test("bad values are INVALID_ARGUMENT naming the field", () => {
  const cases: [GuestNetArgs, string][] = [
    [{ address: "10.213.0.2" }, "address"],
    [{ address: "10.213.0.2/0" }, "address"],
    [{ address: "10.213.0.2/33" }, "address"],
    [{ address: "10.213.0.2/024" }, "address"],
    [{ address: "010.213.0.2/24" }, "address"],
    [{ address: "10.213.0.256/24" }, "address"],
    [{ address: "10.213.0.0/24" }, "address"],
    [{ address: "10.213.0.255/24" }, "address"],
    [{ address: "127.0.0.2/8" }, "address"],
    [{ address: "0.1.2.3/8" }, "address"],
    [{ address: "224.0.0.5/24" }, "address"],
    [{ address: "10.213.0.2/24 hf.init=/bin/sh" }, "address"],
    [{ address: "10.213.0.2/24", gateway: "10.213.1.1" }, "gateway"],
    [{ address: "10.213.0.2/24", gateway: "10.213.0.2" }, "gateway"],
    [{ address: "10.213.0.2/24", gateway: "gw" }, "gateway"],
    [{ address: "10.213.0.2/24", mtu: 67 }, "mtu"],
    [{ address: "10.213.0.2/24", mtu: 65536 }, "mtu"],
    [{ address: "10.213.0.2/24", mtu: 1500.5 }, "mtu"],
    [{ address: "10.213.0.2/24", dns: ["1.1.1.1", "1.0.0.1", "8.8.8.8", "8.8.4.4"] }, "dns"],
    [{ address: "10.213.0.2/24", dns: ["1.1.1.1 hf.ip=1.2.3.4/8"] }, "dns"],
    [{ address: "10.213.0.2/24", dns: ["::1"] }, "dns"],
    [{ address: "10.213.0.2/24", mac: "52:54:00:ab:cd" }, "mac"],
    [{ address: "10.213.0.2/24", mac: "01:00:5e:00:00:01" }, "mac"],
  ];
  for (const [input, field] of cases) {
    assert.throws(
      () => guestNetArgs(input),
      (e: unknown) => e instanceof HyperfleetError && e.code === "INVALID_ARGUMENT" && (e.details as { field?: string }).field === field,
      JSON.stringify(input),
    );
  }
});

test("the kernel command line carries them after the hostname; without net, none", () => {
  const net = { address: "10.213.0.2/24", gateway: "10.213.0.1", mac: "02:00:00:00:00:01" };
  const line = buildKernelArgs({ hostname: "vm_a", net });
  assert.match(line, / hf\.hostname=vm_a hf\.ip=10\.213\.0\.2\/24 hf\.gw=10\.213\.0\.1 hf\.mac=02:00:00:00:00:01$/);
  assert.doesNotMatch(buildKernelArgs({ hostname: "vm_a" }), /hf\.(ip|gw|mtu|dns|mac)=/);
});

test("a VM with a NIC boots the initramfs with the NIC driver and gets its network arguments", () => {
  const assets = { vmlinux: "/k/vmlinux", initramfs: "/k/full.cpio", initramfsBasic: "/k/basic.cpio", rootfs: "/k/rootfs.ext4" } as GuestAssets;
  const nics = [{ tap: "tap0", mac: "02:00:00:00:00:01" }];
  const boot = resolveBootPaths({}, assets, { nics, vsock: false });
  assert.equal(boot.initrdPath, "/k/full.cpio");
  assert.equal(resolveBootPaths({}, assets).initrdPath, "/k/basic.cpio");
  const spec = buildVmSpec({
    id: "vm_net",
    vcpuCount: 1,
    memSizeMib: 256,
    boot,
    rootDisk: { path: "/r/disk.qcow2", format: "qcow2" },
    devices: { nics, vsock: false },
    guestNet: { address: "10.213.0.2/24", gateway: "10.213.0.1", mac: nics[0]!.mac },
    runDir: "/r",
    tscKhz: null,
  });
  assert.deepEqual(spec.nics, nics);
  assert.match(spec.kernelArgs, / hf\.ip=10\.213\.0\.2\/24 hf\.gw=10\.213\.0\.1 hf\.mac=02:00:00:00:00:01$/);
});
