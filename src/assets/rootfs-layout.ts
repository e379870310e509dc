/**
 * The default base root disk (pure): busybox with its applet links, the agent as /sbin/hf-agent,
 * the vsock test tool as /usr/bin/hf-vsock-pipe,
 * the few /etc files programs expect, and empty mount points. Plus the mkfs.ext4 command line.
 */
import type { TreeEntry } from "./tree.js";

/** Filesystem label of the base root disk. */
export const ROOTFS_LABEL = "hf-root";
/** Where the agent lives; hf-init's default `hf.init=`. */
export const AGENT_PATH = "sbin/hf-agent";
/** The vsock test tool (guest/tools/hf-vsock-pipe.c): stdin/stdout over an AF_VSOCK connection. */
export const VSOCK_PIPE_PATH = "usr/bin/hf-vsock-pipe";
const BUSYBOX_PATH = "bin/busybox";

/** Inputs of rootfsTree. */
export interface RootfsInput {
  busybox: Uint8Array;
  /** Applet paths as `busybox --list-full` prints them ("bin/sh", "usr/sbin/chroot", ...). */
  applets: readonly string[];
  agent: Uint8Array;
  /** Static hf-vsock-pipe, installed as VSOCK_PIPE_PATH when given. */
  vsockPipe?: Uint8Array;
  hostname?: string;
}

const text = (path: string, body: string, mode = 0o644): TreeEntry => ({ type: "file", path, mode, data: Buffer.from(body, "utf8") });

/** The base root disk's contents. Applets that would replace one of our files are left out. */
export function rootfsTree(input: RootfsInput): TreeEntry[] {
  const host = input.hostname ?? "hyperfleet";
  const entries: TreeEntry[] = [
    { type: "file", path: BUSYBOX_PATH, mode: 0o755, data: input.busybox },
    { type: "file", path: AGENT_PATH, mode: 0o755, data: input.agent },
    ...(input.vsockPipe ? [{ type: "file", path: VSOCK_PIPE_PATH, mode: 0o755, data: input.vsockPipe } satisfies TreeEntry] : []),
    text("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"),
    text("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
    text("etc/hostname", `${host}\n`),
    text("etc/hosts", `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t${host}\n`),
    ...["proc", "sys"].map((path): TreeEntry => ({ type: "dir", path, mode: 0o555 })),
    ...["dev", "run", "mnt", "home", "var", "usr/bin", "usr/sbin"].map((path): TreeEntry => ({ type: "dir", path, mode: 0o755 })),
    { type: "dir", path: "tmp", mode: 0o1777 },
    { type: "dir", path: "var/tmp", mode: 0o1777 },
    { type: "dir", path: "root", mode: 0o700 },
  ];
  const taken = new Set(entries.map((e) => e.path));
  for (const applet of input.applets) {
    // linuxrc is busybox's initrd entry point; we have hf-init for that.
    if (applet === "linuxrc" || taken.has(applet) || applet.startsWith("/")) continue;
    taken.add(applet);
    entries.push({ type: "symlink", path: applet, target: `/${BUSYBOX_PATH}` });
  }
  return entries;
}

/** Inputs of mkfsArgs. */
export interface MkfsInput {
  image: string;
  /** Directory whose contents become the filesystem. */
  sourceDir: string;
  sizeMiB: number;
  /** Filesystem UUID; derived from the content hash so equal inputs give equal UUIDs. */
  uuid: string;
  /** Further options, placed before `-E` (image disks add an inode count and no reserve). */
  extra?: readonly string[];
}

/**
 * Arguments for mkfs.ext4. `-d` fills the filesystem from a directory (no loop mount, no root
 * needed for that part); `-T default` avoids the "small" profile's 1 KiB blocks and 128-byte inodes
 * (which limit timestamps to 2038); eager inode-table init keeps the guest's ext4lazyinit thread
 * from zeroing tables after boot.
 */
export function mkfsArgs(m: MkfsInput): string[] {
  return [
    "-q",
    "-F",
    "-T",
    "default",
    "-L",
    ROOTFS_LABEL,
    "-U",
    m.uuid,
    ...(m.extra ?? []),
    "-E",
    "root_owner=0:0,lazy_itable_init=0,lazy_journal_init=0",
    "-d",
    m.sourceDir,
    m.image,
    `${m.sizeMiB}M`,
  ];
}

/** Formats 32 hex digits as a UUID string. */
export function uuidFromHex(hex: string): string {
  const h = hex.slice(0, 32).padEnd(32, "0");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}
