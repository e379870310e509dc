/**
 * Maps a guest errno from an ERROR frame to our stable codes. Errnos caused by the request (the
 * path, the guest's own state: full disk, busy mount point) are 4xx codes; only what points at
 * the agent or the host (EIO, protocol errors, unknown errnos) stays a 5xx.
 * Numbers are Linux x86_64 (the only guest we boot).
 */
import { type ErrorCode, HyperfleetError } from "../core/errors.js";

const EPERM = 1, ENOENT = 2, EAGAIN = 11, ENOMEM = 12, EACCES = 13, EBUSY = 16, EEXIST = 17, EXDEV = 18, ENOTDIR = 20, EISDIR = 21,
  EINVAL = 22, ENFILE = 23, EMFILE = 24, ETXTBSY = 26, EFBIG = 27, ENOSPC = 28, EROFS = 30, ENAMETOOLONG = 36, ENOSYS = 38,
  ENOTEMPTY = 39, ELOOP = 40, EPROTO = 71, EPROTONOSUPPORT = 93, EDQUOT = 122, ECANCELED = 125;

/** errno -> code for file operations (and, where they apply, exec). */
const FILE_CODES: ReadonlyMap<number, ErrorCode> = new Map<number, ErrorCode>([
  [ENOENT, "FILE_NOT_FOUND"],
  [ENOTDIR, "FILE_NOT_FOUND"],
  [EACCES, "FILE_PERMISSION_DENIED"],
  [EPERM, "FILE_PERMISSION_DENIED"],
  [EISDIR, "FILE_IS_DIRECTORY"],
  [EINVAL, "INVALID_ARGUMENT"],
  [ENAMETOOLONG, "FILE_PATH_INVALID"],
  [ELOOP, "FILE_PATH_INVALID"],
  [EXDEV, "FILE_PATH_INVALID"],
  [EROFS, "FILE_READ_ONLY"],
  [EBUSY, "FILE_BUSY"],
  [ETXTBSY, "FILE_BUSY"],
  [ENOTEMPTY, "FILE_NOT_EMPTY"],
  [EEXIST, "FILE_ALREADY_EXISTS"],
  [ENOSPC, "FILE_NO_SPACE"],
  [EDQUOT, "FILE_NO_SPACE"],
  [EFBIG, "FILE_TOO_LARGE"],
  [EMFILE, "GUEST_RESOURCE_EXHAUSTED"],
  [ENFILE, "GUEST_RESOURCE_EXHAUSTED"],
  [ENOMEM, "GUEST_RESOURCE_EXHAUSTED"],
  [EAGAIN, "GUEST_RESOURCE_EXHAUSTED"],
  [ECANCELED, "OPERATION_CANCELLED"],
  [EPROTO, "AGENT_PROTOCOL_ERROR"],
  [ENOSYS, "AGENT_PROTOCOL_ERROR"],
  [EPROTONOSUPPORT, "AGENT_UNSUPPORTED_VERSION"],
]);

/** What to do next, for codes whose guest message alone does not say. */
const HINTS: Partial<Record<ErrorCode, string>> = {
  FILE_NOT_EMPTY: "; delete with recursive=true to remove its contents",
  FILE_BUSY: "; it is a mount point or in use inside the machine",
  FILE_NO_SPACE: "; the machine's disk is full: free space inside it or create it with a larger disk",
  AGENT_UNSUPPORTED_VERSION: "; the machine's guest agent is older than this daemon: rebuild the guest image (npm run setup) and restart the machine",
};

/** The code for a guest errno; exported for the table test. */
export function errnoCode(errno: number, op: string): ErrorCode {
  if (op === "exec") {
    if (errno === ENOENT) return "EXEC_NOT_FOUND";
    if (errno === EACCES || errno === EPERM) return "EXEC_PERMISSION_DENIED";
    if (errno === EINVAL) return "INVALID_ARGUMENT";
    if (errno === ECANCELED) return "OPERATION_CANCELLED";
    if (errno === ENOMEM || errno === EAGAIN || errno === EMFILE || errno === ENFILE) return "GUEST_RESOURCE_EXHAUSTED";
    return "AGENT_PROTOCOL_ERROR";
  }
  if (op === "identity" || op === "secrets") {
    if (errno === EINVAL) return "INVALID_ARGUMENT";
    // A guest agent older than IDENTITY (or SECRETS).
    if (errno === ENOSYS) return "AGENT_UNSUPPORTED_VERSION";
    if (errno === ENOMEM) return "GUEST_RESOURCE_EXHAUSTED";
    // The guest refused its own clock, pool or /etc (EPERM, ENODATA, EROFS, ...): not the caller's doing.
    return "INTERNAL";
  }
  // Operations newer than the protocol's first version: an older agent answers ENOSYS.
  if (errno === ENOSYS && (op === "readdir" || op === "rename" || op === "symlink")) return "AGENT_UNSUPPORTED_VERSION";
  return FILE_CODES.get(errno) ?? "FILE_OPERATION_FAILED";
}

export function errnoError(errno: number, message: string, op: string, subject: string): HyperfleetError {
  const what = subject ? `${op} ${subject}` : op;
  const detail = message || `errno ${errno}`;
  const code = errnoCode(errno, op);
  return new HyperfleetError(code, `${what}: ${detail}${HINTS[code] ?? ""}`, { details: { errno } });
}
