/**
 * A file tree described as data: the common input of the initramfs (written as cpio) and the base
 * root disk (written to a directory, then into ext4). Keeping it as data makes both content-hashable
 * and testable without touching the filesystem.
 */
import { createHash } from "node:crypto";
import { HyperfleetError } from "../core/errors.js";

/** One entry of a file tree. Paths are relative ("etc/passwd"), without "." or ".." segments. */
export type TreeEntry =
  | { type: "dir"; path: string; mode: number }
  | { type: "file"; path: string; mode: number; data: Uint8Array }
  | { type: "symlink"; path: string; target: string }
  | { type: "chardev" | "blockdev"; path: string; mode: number; major: number; minor: number };

const DEFAULT_DIR_MODE = 0o755;

function checkPath(path: string): void {
  const parts = path.split("/");
  if (path === "" || path.startsWith("/") || parts.some((p) => p === "" || p === "." || p === "..")) {
    throw new HyperfleetError("INVALID_ARGUMENT", `invalid tree path ${JSON.stringify(path)}: use a relative path like "etc/passwd"`);
  }
}

/**
 * Validates the entries, adds missing parent directories (mode 0755) and sorts so that every
 * directory comes before its contents. Duplicate paths are an error (a silent "last one wins"
 * would hide layout bugs).
 *
 * @example normalizeTree([{ type: "file", path: "etc/hosts", mode: 0o644, data }])
 *   // -> [{ type: "dir", path: "etc", mode: 0o755 }, { type: "file", path: "etc/hosts", ... }]
 */
export function normalizeTree(entries: readonly TreeEntry[]): TreeEntry[] {
  const byPath = new Map<string, TreeEntry>();
  for (const e of entries) {
    checkPath(e.path);
    if (byPath.has(e.path)) throw new HyperfleetError("INVALID_ARGUMENT", `duplicate tree path ${e.path}`);
    byPath.set(e.path, e);
  }
  for (const e of entries) {
    const parts = e.path.split("/");
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join("/");
      const existing = byPath.get(parent);
      if (existing === undefined) byPath.set(parent, { type: "dir", path: parent, mode: DEFAULT_DIR_MODE });
      else if (existing.type !== "dir") {
        throw new HyperfleetError("INVALID_ARGUMENT", `tree path ${e.path} lies below ${parent}, which is not a directory`);
      }
    }
  }
  // Code-unit order sorts every path after its own prefixes, so parents precede their children.
  return [...byPath.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/**
 * A stable SHA-256 over the tree's paths, types, modes, link targets, device numbers and file
 * contents: equal trees give equal hashes, whatever order the entries came in.
 */
export function hashTree(entries: readonly TreeEntry[], extra = ""): string {
  const h = createHash("sha256");
  h.update(`tree-v1\0${extra}\0`);
  for (const e of normalizeTree(entries)) {
    h.update(`${e.type}\0${e.path}\0`);
    switch (e.type) {
      case "dir":
        h.update(`${e.mode.toString(8)}\0`);
        break;
      case "file":
        h.update(`${e.mode.toString(8)}\0${e.data.length}\0`);
        h.update(e.data);
        break;
      case "symlink":
        h.update(`${e.target}\0`);
        break;
      default:
        h.update(`${e.mode.toString(8)}\0${e.major}:${e.minor}\0`);
    }
  }
  return h.digest("hex");
}
