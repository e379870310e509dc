import { test } from "node:test";
import assert from "node:assert/strict";
import { moduleListText, planModuleList } from "../../src/assets/initramfs-layout.js";
import {
  basicGuestDrivers,
  DEFAULT_GUEST_DRIVERS,
  DEFAULT_GUEST_MODULES,
  moduleCompression,
  moduleName,
  parseModulesBuiltin,
  parseModulesDep,
  resolveModuleOrder,
  stripModuleSignature,
  type GuestDriver,
} from "../../src/assets/modules.js";
import { isHyperfleetError } from "../../src/core/errors.js";

/** The relevant lines of modules.dep from Debian's 6.1.0-56-cloud-amd64, plus unrelated noise. */
const FIXTURE = `
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_mmio.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/char/hw_random/virtio-rng.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/char/virtio_console.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/net/core/failover.ko:
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/net/vmw_vsock/vsock.ko:
kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko: kernel/net/vmw_vsock/vsock.ko
kernel/net/vmw_vsock/vmw_vsock_virtio_transport.ko: kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko kernel/net/vmw_vsock/vsock.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/net/vmw_vsock/vsock_loopback.ko: kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko kernel/net/vmw_vsock/vsock.ko
kernel/fs/fat/vfat.ko: kernel/fs/fat/fat.ko
kernel/fs/fat/fat.ko:
`;

const names = (paths: string[]) => paths.map(moduleName);

test("modules: the default set resolves to the load order HOST-NOTES measured", () => {
  assert.deepEqual(names(resolveModuleOrder(parseModulesDep(FIXTURE), DEFAULT_GUEST_MODULES)), [
    "virtio_ring",
    "virtio",
    "virtio_mmio",
    "virtio_pci_modern_dev",
    "virtio_pci_legacy_dev",
    "virtio_pci",
    "virtio_blk",
    "failover",
    "net_failover",
    "virtio_net",
    "virtio_console",
    "vsock",
    "vmw_vsock_virtio_transport_common",
    "vmw_vsock_virtio_transport",
    "vsock_loopback",
    "virtio_rng",
  ]);
});

test("modules: every module follows all of its dependencies, each once", () => {
  const dep = parseModulesDep(FIXTURE);
  const order = resolveModuleOrder(dep, ["vmw_vsock_virtio_transport", "virtio_net", "virtio_blk", "vfat"]);
  assert.equal(new Set(order).size, order.length);
  for (const [i, path] of order.entries()) {
    for (const d of dep.get(path)!) assert.ok(order.indexOf(d) < i, `${d} before ${path}`);
  }
});

test("modules: - and _ are equivalent, compressed names resolve", () => {
  assert.equal(moduleName("kernel/drivers/char/hw_random/virtio-rng.ko.zst"), "virtio_rng");
  const dep = parseModulesDep("kernel/a/virtio-rng.ko.xz:\n");
  assert.deepEqual(resolveModuleOrder(dep, ["virtio_rng"]), ["kernel/a/virtio-rng.ko.xz"]);
  assert.deepEqual(resolveModuleOrder(dep, ["virtio-rng"]), ["kernel/a/virtio-rng.ko.xz"]);
  assert.equal(moduleCompression("x.ko.xz"), "xz");
  assert.equal(moduleCompression("x.ko.zst"), "zst");
  assert.equal(moduleCompression("x.ko"), "none");
});

test("modules: built-in modules are skipped, unknown ones are an error", () => {
  const dep = parseModulesDep(FIXTURE);
  const builtin = parseModulesBuiltin("kernel/fs/ext4/ext4.ko\nkernel/drivers/block/virtio-foo.ko\n");
  assert.deepEqual(resolveModuleOrder(dep, ["ext4", "virtio_foo"], builtin), []);
  assert.throws(() => resolveModuleOrder(dep, ["nosuch"]), (e) => isHyperfleetError(e, "GUEST_ASSETS_MISSING") && /nosuch/.test(e.message));
});

test("modules: cycles and dangling dependencies are reported", () => {
  assert.throws(() => resolveModuleOrder(parseModulesDep("a.ko: b.ko\nb.ko: a.ko\n"), ["a"]), /cycle: a\.ko -> b\.ko -> a\.ko/);
  assert.throws(() => resolveModuleOrder(parseModulesDep("a.ko: gone.ko\n"), ["a"]), /gone\.ko/);
  assert.throws(() => parseModulesDep("no colon here\n"), /malformed/);
});

test("modules: an appended signature is stripped, unsigned modules pass through", () => {
  const body = Buffer.from("\x7fELF...module body...");
  const sig = Buffer.alloc(0x2a9, 0xab);
  const info = Buffer.from([0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0x02, 0xa9]); // id_type 2 (PKCS#7), be32 sig_len
  const signed = Buffer.concat([body, sig, info, Buffer.from("~Module signature appended~\n")]);
  assert.deepEqual(Buffer.from(stripModuleSignature(signed)), body);
  assert.equal(stripModuleSignature(body), body);
  const lying = Buffer.concat([body, Buffer.from([0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]), Buffer.from("~Module signature appended~\n")]);
  assert.throws(() => stripModuleSignature(lying), /corrupt module signature/);
});

test("module list: the default drivers as hf-init gets them, each device's driver under its virtio id", () => {
  // Golden: the /etc/hf-modules our initramfs ships (format in src/assets/initramfs-layout.ts).
  assert.equal(
    moduleListText(planModuleList(parseModulesDep(FIXTURE), DEFAULT_GUEST_DRIVERS)),
    [
      "kernel/drivers/virtio/virtio_ring.ko",
      "kernel/drivers/virtio/virtio.ko",
      "kernel/drivers/virtio/virtio_mmio.ko",
      "pci kernel/drivers/virtio/virtio_pci_modern_dev.ko",
      "pci kernel/drivers/virtio/virtio_pci_legacy_dev.ko",
      "pci kernel/drivers/virtio/virtio_pci.ko",
      "virtio:0x0002 kernel/drivers/block/virtio_blk.ko",
      "virtio:0x0001 kernel/net/core/failover.ko",
      "virtio:0x0001 kernel/drivers/net/net_failover.ko",
      "virtio:0x0001 kernel/drivers/net/virtio_net.ko",
      "virtio:0x0003 kernel/drivers/char/virtio_console.ko",
      "virtio:0x0013 kernel/net/vmw_vsock/vsock.ko",
      "virtio:0x0013 kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko",
      "virtio:0x0013 kernel/net/vmw_vsock/vmw_vsock_virtio_transport.ko",
      // The test switch (docs/agent-protocol.md, "vsock loopback"): loaded only with it.
      "cmdline:hf.vsock_loopback=1 kernel/net/vmw_vsock/vsock.ko",
      "cmdline:hf.vsock_loopback=1 kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko",
      "cmdline:hf.vsock_loopback=1 kernel/net/vmw_vsock/vsock_loopback.ko",
      "late virtio:0x0004 kernel/drivers/char/hw_random/virtio-rng.ko",
      "",
    ].join("\n"),
  );
});

test("module list: the basic drivers (no NIC, vsock or PCI) as hf-init gets them", () => {
  assert.equal(
    moduleListText(planModuleList(parseModulesDep(FIXTURE), basicGuestDrivers(DEFAULT_GUEST_DRIVERS))),
    [
      "kernel/drivers/virtio/virtio_ring.ko",
      "kernel/drivers/virtio/virtio.ko",
      "kernel/drivers/virtio/virtio_mmio.ko",
      "virtio:0x0002 kernel/drivers/block/virtio_blk.ko",
      "virtio:0x0003 kernel/drivers/char/virtio_console.ko",
      "late virtio:0x0004 kernel/drivers/char/hw_random/virtio-rng.ko",
      "",
    ].join("\n"),
  );
});

test("module list: every group is dependency-closed on its own, minus the core", () => {
  const dep = parseModulesDep(FIXTURE);
  const list = planModuleList(dep, DEFAULT_GUEST_DRIVERS);
  const core = list.filter((e) => e.when.kind === "always").map((e) => e.path);
  const groups = new Map<string, string[]>();
  for (const e of list) if (e.when.kind !== "always") groups.set(JSON.stringify(e.when), [...(groups.get(JSON.stringify(e.when)) ?? []), e.path]);
  for (const [when, paths] of groups) {
    for (const [i, path] of paths.entries()) {
      for (const d of dep.get(path)!) assert.ok(core.includes(d) || paths.indexOf(d) < i, `${when}: ${d} before ${path}`);
    }
  }
  // The core comes first: hf-init's first pass needs the transports before it looks at the bus.
  assert.deepEqual(core, list.slice(0, core.length).map((e) => e.path));
});

test("module list: a kernel command line switch must be one word (hf-init matches whole words)", () => {
  const dep = parseModulesDep(FIXTURE);
  for (const word of ["", "a b", "x\ty"]) {
    assert.throws(
      () => moduleListText(planModuleList(dep, [{ module: "vfat", when: { kind: "cmdline", word } }])),
      (e) => isHyperfleetError(e, "INVALID_ARGUMENT"),
      JSON.stringify(word),
    );
  }
  assert.equal(moduleListText(planModuleList(dep, [{ module: "vfat", when: { kind: "cmdline", word: "hf.x=1" } }])), "cmdline:hf.x=1 kernel/fs/fat/fat.ko\ncmdline:hf.x=1 kernel/fs/fat/vfat.ko\n");
});

test("module list: a module two drivers share is listed under both conditions", () => {
  const drivers: GuestDriver[] = [
    { module: "virtio_mmio", when: { kind: "always" } },
    { module: "virtio_net", when: { kind: "virtio", deviceId: 1 } },
    { module: "net_failover", when: { kind: "pci" } },
  ];
  assert.equal(
    moduleListText(planModuleList(parseModulesDep(FIXTURE), drivers)),
    "kernel/drivers/virtio/virtio_ring.ko\nkernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio_mmio.ko\n" +
      "virtio:0x0001 kernel/net/core/failover.ko\nvirtio:0x0001 kernel/drivers/net/net_failover.ko\nvirtio:0x0001 kernel/drivers/net/virtio_net.ko\n" +
      "pci kernel/net/core/failover.ko\npci kernel/drivers/net/net_failover.ko\n",
  );
});

test("module list: only unconditional modules give plain lines (what the benchmark floor's init reads)", () => {
  const dep = parseModulesDep(FIXTURE);
  const always = ["virtio_mmio", "virtio_console"].map((module): GuestDriver => ({ module, when: { kind: "always" } }));
  assert.equal(moduleListText(planModuleList(dep, always)), resolveModuleOrder(dep, ["virtio_mmio", "virtio_console"]).map((p) => `${p}\n`).join(""));
});

test("module list: a built-in driver gives no lines; a late always-driver says only late", () => {
  // A kernel with virtio_blk built in: modules.dep has no entry for it, modules.builtin has.
  const dep = parseModulesDep(FIXTURE.replace(/^kernel\/drivers\/block\/virtio_blk\.ko:.*$/m, ""));
  const builtin = parseModulesBuiltin("kernel/drivers/block/virtio_blk.ko\n");
  const drivers: GuestDriver[] = [
    { module: "virtio_mmio", when: { kind: "always" } },
    { module: "virtio_blk", when: { kind: "virtio", deviceId: 2 } },
    { module: "virtio_console", when: { kind: "always" }, late: true },
  ];
  assert.equal(
    moduleListText(planModuleList(dep, drivers, builtin)),
    "kernel/drivers/virtio/virtio_ring.ko\nkernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio_mmio.ko\nlate kernel/drivers/char/virtio_console.ko\n",
  );
  assert.throws(() => moduleListText([{ path: "x.ko", when: { kind: "virtio", deviceId: 0x10000 } }]), /16-bit/);
});
