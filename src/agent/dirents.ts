/**
 * The ENTRY fields of a DIRENTS frame (docs/agent-protocol.md, "readdir"): pure, so the decoder is
 * unit-tested without a guest.
 */
import type { FileStatView } from "../core/ports/services.js";
import { FrameError, decodeFields } from "./codec.js";
import { ENTRY_HEADER, Tag } from "./protocol.js";

/** One directory entry, lstat'ed: a symlink is `type: "symlink"` with its `target`. */
export interface DirEntry extends FileStatView {
  name: string;
  /** A symlink's target as stored (not resolved); absent for other types. */
  target?: string;
}

/** The entries of one DIRENTS payload. A malformed ENTRY is a protocol error (AGENT_PROTOCOL_ERROR). */
export function decodeEntries(payload: Buffer): DirEntry[] {
  return decodeFields(payload).all(Tag.ENTRY).map(decodeEntry);
}

export function decodeEntry(b: Buffer): DirEntry {
  if (b.length < ENTRY_HEADER) throw new FrameError(`ENTRY of ${b.length} bytes is shorter than its ${ENTRY_HEADER}-byte header`);
  const nameLen = b.readUInt16LE(28);
  if (nameLen === 0 || ENTRY_HEADER + nameLen > b.length) throw new FrameError(`ENTRY name length ${nameLen} does not fit its ${b.length} bytes`);
  const mode = b.readUInt32LE(0);
  const type = fileType(mode);
  const e: DirEntry = {
    name: b.toString("utf8", ENTRY_HEADER, ENTRY_HEADER + nameLen),
    type,
    mode,
    uid: b.readUInt32LE(4),
    gid: b.readUInt32LE(8),
    size: Number(b.readBigUInt64LE(12)),
    mtime: new Date(Number(b.readBigInt64LE(20) / 1_000_000n)),
  };
  if (type === "symlink") e.target = b.toString("utf8", ENTRY_HEADER + nameLen);
  return e;
}

/** A st_mode's file type, as STAT and READDIR report it. */
export function fileType(mode: number): FileStatView["type"] {
  switch (mode & 0o170000) {
    case 0o100000:
      return "file";
    case 0o040000:
      return "directory";
    case 0o120000:
      return "symlink";
    default:
      return "other";
  }
}
