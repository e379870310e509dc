/**
 * Kernel module selection for the initramfs (pure): parse `modules.dep`, resolve the wanted
 * modules to a dependency-closed list in load order, and strip appended signatures.
 */
import { HyperfleetError } from "../core/errors.js";

/**
 * When hf-init loads a driver module: always, only if the PCI bus has devices, only if a virtio
 * device with this device id is present, or only if the kernel command line has this exact word (a
 * switch). Loading drivers for devices the VM lacks costs boot time (each module load is
 * milliseconds under TCG) and nothing else.
 */
export type ModuleCondition = { kind: "always" } | { kind: "pci" } | { kind: "virtio"; deviceId: number } | { kind: "cmdline"; word: string };

/**
 * The test switch that loads vsock_loopback and has the agent listen on vsock beside virtio-serial
 * (docs/agent-protocol.md, "vsock loopback"). Keep in sync with HF_VSOCK_LOOPBACK_ARG in
 * guest/common/cmdline.h.
 */
export const VSOCK_LOOPBACK_ARG = "hf.vsock_loopback=1";

/** Virtio device ids (virtio spec 1.2, 5 "Device Types"), as /sys/bus/virtio/devices/<dev>/device shows them. */
export const VIRTIO_DEVICE_ID = { net: 0x01, block: 0x02, console: 0x03, rng: 0x04, vsock: 0x13 } as const;

/** A driver module and the devices it is loaded for. */
export interface GuestDriver {
  module: string;
  when: ModuleCondition;
  /**
   * Load it only once the boot is over (hf-init hands it to a background child), for drivers
   * nothing on the way to the agent's first answer needs: each module load costs milliseconds of
   * CPU under TCG.
   */
  late?: boolean;
}

const virtio = (deviceId: number): ModuleCondition => ({ kind: "virtio", deviceId });

/**
 * The drivers a Hyperfleet guest may need, in the order they should load: transports first (their
 * devices must be on the virtio bus before the device drivers are chosen), then the root disk, so
 * it is ready as early as possible. Dependencies are added by the initramfs builder.
 */
export const DEFAULT_GUEST_DRIVERS: readonly GuestDriver[] = [
  // QEMU microvm and Firecracker put every device on virtio-mmio.
  { module: "virtio_mmio", when: { kind: "always" } },
  // Only machines with a PCI bus (not microvm/Firecracker, whose kernels run with pci=off).
  { module: "virtio_pci", when: { kind: "pci" } },
  { module: "virtio_blk", when: virtio(VIRTIO_DEVICE_ID.block) },
  { module: "virtio_net", when: virtio(VIRTIO_DEVICE_ID.net) },
  // The QEMU agent channel (virtio-serial) and console hvc0.
  { module: "virtio_console", when: virtio(VIRTIO_DEVICE_ID.console) },
  // The Firecracker agent channel; pulls in the vsock core.
  { module: "vmw_vsock_virtio_transport", when: virtio(VIRTIO_DEVICE_ID.vsock) },
  // Tests only: guest processes reach the agent's vsock listener at CID 1 without a vsock device.
  // Not in the basic initramfs (its condition is no basic device).
  { module: "vsock_loopback", when: { kind: "cmdline", word: VSOCK_LOOPBACK_ARG } },
  // Feeds the entropy pool, which the CPU (RDRAND) seeded at ~0.07 s: nothing on the boot path waits.
  { module: "virtio-rng", when: virtio(VIRTIO_DEVICE_ID.rng), late: true },
];

/**
 * Virtio devices every Hyperfleet VM has: its root disk, and under QEMU the console and agent
 * channel (virtio-serial) and the entropy source. The network, vsock and PCI drivers are for
 * machines that have those devices.
 */
const BASIC_DEVICE_IDS: ReadonlySet<number> = new Set([VIRTIO_DEVICE_ID.block, VIRTIO_DEVICE_ID.console, VIRTIO_DEVICE_ID.rng]);

/**
 * The drivers of a VM without NICs, vsock or PCI: those loaded always or for a basic device. An
 * initramfs built from them is a third of the full one; the kernel unpacks every byte before
 * /init runs (~15 ms less under TCG).
 */
export function basicGuestDrivers(drivers: readonly GuestDriver[]): GuestDriver[] {
  return drivers.filter((d) => d.when.kind === "always" || (d.when.kind === "virtio" && BASIC_DEVICE_IDS.has(d.when.deviceId)));
}

/** The module names of DEFAULT_GUEST_DRIVERS. */
export const DEFAULT_GUEST_MODULES: readonly string[] = DEFAULT_GUEST_DRIVERS.map((d) => d.module);

/** modules.dep as a map: module path (relative to /lib/modules/<ver>) -> its dependencies' paths. */
export type ModulesDep = ReadonlyMap<string, readonly string[]>;

const MODULE_SUFFIX = /\.ko(\.xz|\.zst|\.gz)?$/;

/** "kernel/drivers/char/hw_random/virtio-rng.ko.xz" -> "virtio_rng". `-` and `_` are equivalent in module names. */
export function moduleName(pathOrName: string): string {
  const base = pathOrName.slice(pathOrName.lastIndexOf("/") + 1);
  return base.replace(MODULE_SUFFIX, "").replaceAll("-", "_");
}

/** The compression of a module file, from its name; the kernel we ship cannot load compressed ones. */
export function moduleCompression(path: string): "none" | "xz" | "zst" | "gz" {
  const m = MODULE_SUFFIX.exec(path);
  return m?.[1] === undefined ? "none" : (m[1].slice(1) as "xz" | "zst" | "gz");
}

/** Parses the text of modules.dep ("path: dep dep ..." per line). */
export function parseModulesDep(text: string): ModulesDep {
  const deps = new Map<string, string[]>();
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const colon = line.indexOf(":");
    if (colon <= 0) throw new HyperfleetError("INTERNAL", `malformed modules.dep line: ${JSON.stringify(line)}`);
    const rest = line.slice(colon + 1).trim();
    deps.set(line.slice(0, colon), rest === "" ? [] : rest.split(/\s+/));
  }
  return deps;
}

/** Parses modules.builtin (one path per line) into module names. */
export function parseModulesBuiltin(text: string): Set<string> {
  return new Set(
    text
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l !== "")
      .map(moduleName),
  );
}

/**
 * Resolves wanted module names to module paths in a valid load order: every module comes after
 * all of its dependencies, each appears once, and the wanted order is kept otherwise. Modules
 * built into the kernel are skipped. Dependencies are visited in reverse of their modules.dep
 * order, which is the order modprobe loads them in.
 *
 * @example resolveModuleOrder(dep, ["virtio_blk"])
 *   // -> ["kernel/drivers/virtio/virtio_ring.ko", "kernel/drivers/virtio/virtio.ko", "kernel/drivers/block/virtio_blk.ko"]
 */
export function resolveModuleOrder(dep: ModulesDep, wanted: readonly string[], builtin: ReadonlySet<string> = new Set()): string[] {
  const pathByName = new Map<string, string>();
  for (const path of dep.keys()) pathByName.set(moduleName(path), path);

  const order: string[] = [];
  const done = new Set<string>();
  const visiting = new Set<string>();
  const visit = (path: string, chain: string[]): void => {
    if (done.has(path)) return;
    if (visiting.has(path)) throw new HyperfleetError("INTERNAL", `module dependency cycle: ${[...chain, path].join(" -> ")}`);
    const deps = dep.get(path);
    if (deps === undefined) throw new HyperfleetError("INTERNAL", `modules.dep lists ${path} as a dependency but has no entry for it`);
    visiting.add(path);
    for (const d of [...deps].reverse()) visit(d, [...chain, path]);
    visiting.delete(path);
    done.add(path);
    order.push(path);
  };

  for (const want of wanted) {
    const name = moduleName(want);
    const path = pathByName.get(name);
    if (path !== undefined) visit(path, []);
    else if (!builtin.has(name)) {
      throw new HyperfleetError("GUEST_ASSETS_MISSING", `kernel module ${want} is neither in modules.dep nor built in: pick a kernel that has it`);
    }
  }
  return order;
}

const SIG_MAGIC = Buffer.from("~Module signature appended~\n", "latin1");
/** sizeof(struct module_signature): algo, hash, id_type, signer_len, key_id_len, pad[3], be32 sig_len. */
const SIG_INFO_SIZE = 12;

/**
 * Removes an appended module signature (PKCS#7 + struct module_signature + magic), which the
 * kernel would otherwise parse and check on every load (~20 ms per boot in total). Without
 * CONFIG_MODULE_SIG_FORCE unsigned modules still load; the kernel only notes a taint. Returns the
 * input unchanged if it carries no signature.
 */
export function stripModuleSignature(ko: Uint8Array): Uint8Array {
  const end = ko.length - SIG_MAGIC.length;
  if (end < SIG_INFO_SIZE || !SIG_MAGIC.equals(ko.subarray(end))) return ko;
  const sigLen = new DataView(ko.buffer, ko.byteOffset, ko.byteLength).getUint32(end - 4, false);
  const cut = end - SIG_INFO_SIZE - sigLen;
  if (cut <= 0) throw new HyperfleetError("INTERNAL", "corrupt module signature trailer");
  return ko.subarray(0, cut);
}
