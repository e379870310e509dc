/**
 * A writer for "newc" cpio archives (magic 070701), the format the kernel unpacks as initramfs.
 * No external cpio is needed, and the output is byte-for-byte reproducible: inode numbers are
 * sequential, owners are root and every mtime is 0. The archive is left uncompressed on purpose:
 * the kernel unpacks a plain cpio fastest, and ours is small.
 */
import { normalizeTree, type TreeEntry } from "./tree.js";

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const HEADER_SIZE = 110;
const TRAILER = "TRAILER!!!";

interface Header {
  ino: number;
  mode: number;
  nlink: number;
  size: number;
  rdevMajor: number;
  rdevMinor: number;
  name: string;
}

const hex8 = (n: number): string => n.toString(16).padStart(8, "0");
const pad4 = (n: number): number => (4 - (n % 4)) % 4;

function headerBytes(h: Header): Buffer {
  const name = Buffer.from(`${h.name}\0`, "utf8");
  const fields = [h.ino, h.mode, 0, 0, h.nlink, 0, h.size, 0, 0, h.rdevMajor, h.rdevMinor, name.length, 0];
  const head = Buffer.from(`070701${fields.map(hex8).join("")}`, "ascii");
  return Buffer.concat([head, name, Buffer.alloc(pad4(HEADER_SIZE + name.length))]);
}

function modeOf(e: TreeEntry): number {
  switch (e.type) {
    case "dir":
      return S_IFDIR | e.mode;
    case "file":
      return S_IFREG | e.mode;
    case "symlink":
      return S_IFLNK | 0o777;
    case "chardev":
      return S_IFCHR | e.mode;
    case "blockdev":
      return S_IFBLK | e.mode;
  }
}

function payloadOf(e: TreeEntry): Uint8Array {
  if (e.type === "file") return e.data;
  if (e.type === "symlink") return Buffer.from(e.target, "utf8");
  return new Uint8Array(0);
}

/**
 * Serialises a tree as a newc cpio archive, parents before children, ending with the trailer.
 *
 * @example
 *   const bytes = writeCpio([{ type: "chardev", path: "dev/console", mode: 0o600, major: 5, minor: 1 }]);
 *   // "dev" is added as a 0755 directory before "dev/console"
 */
export function writeCpio(entries: readonly TreeEntry[]): Buffer {
  const chunks: Uint8Array[] = [];
  let ino = 0;
  for (const e of normalizeTree(entries)) {
    const data = payloadOf(e);
    const isDev = e.type === "chardev" || e.type === "blockdev";
    chunks.push(
      headerBytes({
        ino: ++ino,
        mode: modeOf(e),
        nlink: e.type === "dir" ? 2 : 1,
        size: data.length,
        rdevMajor: isDev ? e.major : 0,
        rdevMinor: isDev ? e.minor : 0,
        name: e.path,
      }),
      data,
      Buffer.alloc(pad4(data.length)),
    );
  }
  chunks.push(headerBytes({ ino: 0, mode: 0, nlink: 1, size: 0, rdevMajor: 0, rdevMinor: 0, name: TRAILER }));
  return Buffer.concat(chunks);
}
