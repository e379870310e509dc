/**
 * What goes into our initramfs (pure): hf-init as /init, the kernel modules, and the module list
 * /etc/hf-modules that tells hf-init (guest/init/modules.c) which of them to load on which devices.
 */
import { HyperfleetError } from "../core/errors.js";
import { resolveModuleOrder, type GuestDriver, type ModuleCondition, type ModulesDep } from "./modules.js";
import type { TreeEntry } from "./tree.js";

/** Where hf-init looks for its module list. Keep in sync with MODULE_LIST in hf-init.c. */
export const MODULE_LIST_PATH = "etc/hf-modules";

/** A kernel module ready for finit_module: uncompressed, signature stripped. */
export interface InitramfsModule {
  /** Path relative to /lib/modules/<release>/, e.g. "kernel/drivers/block/virtio_blk.ko". */
  path: string;
  data: Uint8Array;
}

/** One line of the module list: a module path (relative to /lib/modules/<release>/) and when to load it. */
export interface ModuleListEntry {
  path: string;
  when: ModuleCondition;
  /** Loaded only once the boot is over (GuestDriver.late). */
  late?: boolean;
}

/**
 * Plans the module list: the dependency closure of the drivers loaded always (and not late) comes
 * first and unconditionally (the "core"); then, per other driver, its dependency closure minus
 * the core, under the driver's condition and `late` flag. A module two drivers share is listed
 * under both (hf-init loads it once), so each group loads on its own. Modules built into the
 * kernel are left out, so a built-in driver yields an empty group.
 *
 * @example planModuleList(dep, [{ module: "virtio_mmio", when: { kind: "always" } }, { module: "virtio_blk", when: { kind: "virtio", deviceId: 2 } }])
 *   // -> virtio_ring, virtio, virtio_mmio (always), then virtio_blk (virtio 0x0002)
 */
export function planModuleList(dep: ModulesDep, drivers: readonly GuestDriver[], builtin: ReadonlySet<string> = new Set()): ModuleListEntry[] {
  const inCoreGroup = (d: GuestDriver): boolean => d.when.kind === "always" && !d.late;
  const core = resolveModuleOrder(dep, drivers.filter(inCoreGroup).map((d) => d.module), builtin);
  const inCore = new Set(core);
  const list: ModuleListEntry[] = core.map((path) => ({ path, when: { kind: "always" } }));
  for (const d of drivers) {
    if (inCoreGroup(d)) continue;
    for (const path of resolveModuleOrder(dep, [d.module], builtin)) {
      if (!inCore.has(path)) list.push(d.late ? { path, when: d.when, late: true } : { path, when: d.when });
    }
  }
  return list;
}

/** The words before a module list line's path, each followed by a space. */
function linePrefix(e: ModuleListEntry): string {
  return `${e.late ? "late " : ""}${conditionPrefix(e.when)}`;
}

function conditionPrefix(when: ModuleCondition): string {
  switch (when.kind) {
    case "always":
      return "";
    case "pci":
      return "pci ";
    case "virtio":
      if (!Number.isInteger(when.deviceId) || when.deviceId < 0 || when.deviceId > 0xffff) {
        throw new HyperfleetError("INVALID_ARGUMENT", `virtio device id ${when.deviceId} is not a 16-bit number`);
      }
      return `virtio:0x${when.deviceId.toString(16).padStart(4, "0")} `;
    case "cmdline":
      // hf-init matches whole space-separated words of /proc/cmdline; the list is space-separated too.
      if (!/^\S+$/.test(when.word)) throw new HyperfleetError("INVALID_ARGUMENT", `kernel command line switch ${JSON.stringify(when.word)} must be one word`);
      return `cmdline:${when.word} `;
  }
}

/**
 * The text of /etc/hf-modules. Format (described at the other end too, in guest/init/modules.c):
 * one module per line, its path relative to /lib/modules/<release>/, optionally after `late`
 * and/or a condition, each followed by a space:
 *
 *   kernel/drivers/virtio/virtio_mmio.ko                always loaded
 *   pci kernel/drivers/virtio/virtio_pci.ko             only if /sys/bus/pci/devices has an entry
 *   virtio:0x0002 kernel/drivers/block/virtio_blk.ko    only if a virtio device with that device id
 *                                                       (/sys/bus/virtio/devices/<dev>/device) exists
 *   late virtio:0x0004 kernel/.../virtio-rng.ko         as above, loaded once the boot is over
 *   cmdline:hf.vsock_loopback=1 kernel/.../vsock_loopback.ko
 *                                                       only if the kernel command line has that word
 *
 * hf-init loads the unconditional and `pci` lines first, then checks the virtio bus and loads the
 * `virtio:` and `cmdline:` lines, each pass in file order; a module listed twice is loaded once. A
 * list of bare paths is the older format: every line loads, in order (the boot benchmark's floor
 * reads it so).
 */
export function moduleListText(list: readonly ModuleListEntry[]): string {
  return list.map((e) => `${linePrefix(e)}${e.path}\n`).join("");
}

/** Inputs of initramfsTree. */
export interface InitramfsInput {
  /** The static hf-init binary, installed as /init. */
  init: Uint8Array;
  kernelRelease: string;
  /** The module files, each once. */
  modules: readonly InitramfsModule[];
  /** What hf-init loads when (see planModuleList). Default: every module, unconditionally, in order. */
  moduleList?: readonly ModuleListEntry[];
}

/**
 * The initramfs contents: /init, the modules and their list, the mount points hf-init uses, and
 * /dev/console so the kernel can give /init a console before devtmpfs is mounted.
 */
export function initramfsTree(input: InitramfsInput): TreeEntry[] {
  const list = input.moduleList ?? input.modules.map((m): ModuleListEntry => ({ path: m.path, when: { kind: "always" } }));
  const shipped = new Set(input.modules.map((m) => m.path));
  const missing = list.find((e) => !shipped.has(e.path));
  if (missing) throw new HyperfleetError("INTERNAL", `the module list names ${missing.path}, which is not in the initramfs`);
  return [
    { type: "file", path: "init", mode: 0o755, data: input.init },
    { type: "file", path: MODULE_LIST_PATH, mode: 0o644, data: Buffer.from(moduleListText(list), "utf8") },
    ...input.modules.map((m): TreeEntry => ({ type: "file", path: `lib/modules/${input.kernelRelease}/${m.path}`, mode: 0o644, data: m.data })),
    { type: "dir", path: "dev", mode: 0o755 },
    { type: "chardev", path: "dev/console", mode: 0o600, major: 5, minor: 1 },
    { type: "dir", path: "proc", mode: 0o555 },
    { type: "dir", path: "sys", mode: 0o555 },
    { type: "dir", path: "newroot", mode: 0o755 },
  ];
}
