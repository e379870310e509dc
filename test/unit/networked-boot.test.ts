/**
 * networkedBoot (src/network/networked-boot.ts): what the daemon's vm-factory and library machines
 * both boot a networked VM with, checked through the VmSpec it produces.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { MAX_RESOLVERS } from "../../src/network/dns.js";
import { networkedBoot } from "../../src/network/networked-boot.js";
import { GUEST_MAX_DNS } from "../../src/vmm/guest-net-args.js";
import { buildVmSpec, devicesFor } from "../../src/vmm/spec.js";

test("a networked VM: the TAP in its namespace, the shared guest address, DNS capped, nsenter's namespace", () => {
  assert.equal(MAX_RESOLVERS, GUEST_MAX_DNS, "the guest takes as many resolvers as we pass");
  const nb = networkedBoot({ netnsPath: "/run/netns/hf-ab12cd34-vm_A", nic: { tap: "tap0", mac: "02:11:22:33:44:55" } }, ["1.1.1.1", "8.8.8.8", "9.9.9.9", "4.4.4.4"]);
  assert.equal(nb.netns, "/run/netns/hf-ab12cd34-vm_A");
  assert.deepEqual(nb.nics, [{ tap: "tap0", mac: "02:11:22:33:44:55" }]);
  assert.deepEqual(nb.guestNet, { address: "169.254.0.21/30", gateway: "169.254.0.22", mtu: 1500, dns: ["1.1.1.1", "8.8.8.8", "9.9.9.9"], mac: "02:11:22:33:44:55" });
  const spec = buildVmSpec({
    id: "vm_A",
    vcpuCount: 1,
    memSizeMib: 128,
    boot: { kernelImagePath: "/k", initrdPath: null, kernelArgs: null },
    rootDisk: { path: "/d", format: "raw" },
    devices: devicesFor("qemu", nb.nics),
    guestNet: nb.guestNet,
    runDir: "/r",
    tscKhz: null,
  });
  assert.deepEqual(spec.nics, nb.nics);
  assert.match(spec.kernelArgs, /169\.254\.0\.21/);
  assert.match(spec.kernelArgs, /169\.254\.0\.22/);
  assert.match(spec.kernelArgs, /console=hvc0 .*8250\.nr_uarts=0/);
});

test("under Firecracker: the agent on vsock, the serial console ttyS0 with its UART kept", () => {
  const nb = networkedBoot({ netnsPath: "/run/netns/hf-ab12cd34-vm_F", nic: { tap: "tap0", mac: "02:11:22:33:44:56" } }, []);
  const devices = devicesFor("firecracker", nb.nics);
  assert.deepEqual(devices, { nics: [{ tap: "tap0", mac: "02:11:22:33:44:56" }], vsock: true });
  const spec = buildVmSpec({
    id: "vm_F",
    vcpuCount: 1,
    memSizeMib: 128,
    boot: { kernelImagePath: "/k", initrdPath: null, kernelArgs: null },
    rootDisk: { path: "/d", format: "raw" },
    devices,
    guestNet: nb.guestNet,
    runDir: "/r",
    tscKhz: null,
  });
  assert.match(spec.kernelArgs, /^console=ttyS0 /);
  assert.doesNotMatch(spec.kernelArgs, /nr_uarts/);
});
