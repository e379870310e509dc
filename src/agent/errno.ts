/**
 * Maps a guest errno from an ERROR frame to our stable codes. Only the errnos a user can act on
 * get their own code; the rest keep the guest's message under FILE_OPERATION_FAILED.
 */
import { type ErrorCode, HyperfleetError } from "../core/errors.js";

const ENOENT = 2, EPERM = 1, EACCES = 13, EISDIR = 21, ENOTDIR = 20, EPROTO = 71, ENOSYS = 38, EPROTONOSUPPORT = 93, EINVAL = 22;

export function errnoError(errno: number, message: string, op: string, subject: string): HyperfleetError {
  const what = subject ? `${op} ${subject}` : op;
  const detail = message || `errno ${errno}`;
  let code: ErrorCode;
  if (op === "exec") {
    code = errno === ENOENT ? "EXEC_NOT_FOUND" : errno === EACCES || errno === EPERM ? "EXEC_PERMISSION_DENIED" : errno === EINVAL ? "INVALID_ARGUMENT" : "AGENT_PROTOCOL_ERROR";
  } else if (errno === ENOENT || errno === ENOTDIR) code = "FILE_NOT_FOUND";
  else if (errno === EACCES || errno === EPERM) code = "FILE_PERMISSION_DENIED";
  else if (errno === EISDIR) code = "FILE_IS_DIRECTORY";
  else if (errno === EINVAL) code = "INVALID_ARGUMENT";
  else if (errno === EPROTO || errno === ENOSYS) code = "AGENT_PROTOCOL_ERROR";
  else if (errno === EPROTONOSUPPORT) code = "AGENT_UNSUPPORTED_VERSION";
  else code = "FILE_OPERATION_FAILED";
  return new HyperfleetError(code, `${what}: ${detail}`, { details: { errno } });
}
