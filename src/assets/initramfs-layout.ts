/**
 * What goes into our initramfs (pure). hf-init (guest/init/hf-init.c) reads /etc/hf-modules and
 * loads each line's module, relative to /lib/modules/<release>/, in file order.
 */
import type { TreeEntry } from "./tree.js";

/** Where hf-init looks for its module list. Keep in sync with MODULE_LIST in hf-init.c. */
export const MODULE_LIST_PATH = "etc/hf-modules";

/** A kernel module ready for finit_module: uncompressed, signature stripped. */
export interface InitramfsModule {
  /** Path relative to /lib/modules/<release>/, e.g. "kernel/drivers/block/virtio_blk.ko". */
  path: string;
  data: Uint8Array;
}

/** Inputs of initramfsTree. */
export interface InitramfsInput {
  /** The static hf-init binary, installed as /init. */
  init: Uint8Array;
  kernelRelease: string;
  /** Modules in load order. */
  modules: readonly InitramfsModule[];
}

/**
 * The initramfs contents: /init, the modules and their list, the mount points hf-init uses, and
 * /dev/console so the kernel can give /init a console before devtmpfs is mounted.
 */
export function initramfsTree(input: InitramfsInput): TreeEntry[] {
  const list = input.modules.map((m) => `${m.path}\n`).join("");
  return [
    { type: "file", path: "init", mode: 0o755, data: input.init },
    { type: "file", path: MODULE_LIST_PATH, mode: 0o644, data: Buffer.from(list, "utf8") },
    ...input.modules.map((m): TreeEntry => ({ type: "file", path: `lib/modules/${input.kernelRelease}/${m.path}`, mode: 0o644, data: m.data })),
    { type: "dir", path: "dev", mode: 0o755 },
    { type: "chardev", path: "dev/console", mode: 0o600, major: 5, minor: 1 },
    { type: "dir", path: "proc", mode: 0o555 },
    { type: "dir", path: "sys", mode: 0o555 },
    { type: "dir", path: "newroot", mode: 0o755 },
  ];
}
