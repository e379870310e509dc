/**
 * The Firecracker SDK example (the project brief's "Create a machine with OCI image"), as written:
 * the same options and calls. It runs under whichever VMM this host has (QEMU here; see
 * Machine's `socketPath` and `vsock` for what they mean under QEMU). In your own project the
 * import is `from "hyperfleet"`.
 *
 *   node --import tsx examples/sdk-example.ts
 *
 * Three things are host-specific and come from the environment: EXAMPLE_IMAGE (default
 * `alpine:latest`; a plain-HTTP registry also needs HYPERFLEET_INSECURE_REGISTRIES), EXAMPLE_DIR
 * where the two sockets go (default /tmp) and EXAMPLE_KERNEL (default: the vmlinux `npm run setup`
 * fetched). test/integration/sdk-example.test.ts runs this file.
 */
import { readFileSync } from "node:fs";
import { Machine } from "../src/index.js";

const dir = process.env.EXAMPLE_DIR ?? "/tmp";
const vmlinux = process.env.EXAMPLE_KERNEL ?? (JSON.parse(readFileSync("/var/lib/hyperfleet/assets.json", "utf8")) as { vmlinux: string }).vmlinux;

// Create a machine with OCI image
const machine = new Machine({
  socketPath: `${dir}/firecracker.sock`,
  kernelImagePath: vmlinux,
  kernelArgs: "console=ttyS0 reboot=k panic=1 pci=off",
  vcpuCount: 2,
  memSizeMib: 512,
  // OCI image will be resolved at start time
  imageRef: process.env.EXAMPLE_IMAGE ?? "alpine:latest",
  imageSizeMib: 1024,
  // Required for exec(): host UDS for vsock + guest agent in the image
  vsock: { guest_cid: 3, uds_path: `${dir}/hyperfleet.vsock` },
});

const startRes = await machine.start();
startRes.unwrap();

// Execute a command
const execRes = (await machine.exec(["uname", "-a"])).unwrap();
console.log(execRes.stdout);

// Graceful shutdown
const shutdownRes = await machine.shutdown();
shutdownRes.unwrap();

// Not in the brief's example: the VM's disk and files stay for a later start() until destroyed.
await machine.destroy();
