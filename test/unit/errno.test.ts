/** Guest errnos -> codes: what the request or the user's machine caused is 4xx; only our faults are 5xx. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { errnoCode, errnoError } from "../../src/agent/errno.js";
import { httpStatus } from "../../src/api/http-status.js";

test("every errno a user can cause maps to a 4xx code", () => {
  const cases: [number, string, string][] = [
    [2, "FILE_NOT_FOUND", "ENOENT"],
    [13, "FILE_PERMISSION_DENIED", "EACCES"],
    [16, "FILE_BUSY", "EBUSY"],
    [17, "FILE_ALREADY_EXISTS", "EEXIST"],
    [18, "FILE_PATH_INVALID", "EXDEV"],
    [24, "GUEST_RESOURCE_EXHAUSTED", "EMFILE"],
    [26, "FILE_BUSY", "ETXTBSY"],
    [27, "FILE_TOO_LARGE", "EFBIG"],
    [28, "FILE_NO_SPACE", "ENOSPC"],
    [30, "FILE_READ_ONLY", "EROFS"],
    [36, "FILE_PATH_INVALID", "ENAMETOOLONG"],
    [39, "FILE_NOT_EMPTY", "ENOTEMPTY"],
    [40, "FILE_PATH_INVALID", "ELOOP"],
    [122, "FILE_NO_SPACE", "EDQUOT"],
    [125, "OPERATION_CANCELLED", "ECANCELED"],
  ];
  for (const [errno, code, name] of cases) {
    assert.equal(errnoCode(errno, "write"), code, name);
    const s = httpStatus(errnoError(errno, "x", "write", "/p").code);
    assert.ok(s >= 400 && s < 500, `${name} -> ${s}`);
  }
});

test("EIO and unknown errnos stay 500 FILE_OPERATION_FAILED; exec keeps its own codes", () => {
  assert.equal(errnoCode(5, "read"), "FILE_OPERATION_FAILED");
  assert.equal(errnoCode(9999, "read"), "FILE_OPERATION_FAILED");
  assert.equal(httpStatus("FILE_OPERATION_FAILED"), 500);
  assert.equal(errnoCode(2, "exec"), "EXEC_NOT_FOUND");
  assert.equal(errnoCode(12, "exec"), "GUEST_RESOURCE_EXHAUSTED");
  assert.equal(errnoCode(125, "exec"), "OPERATION_CANCELLED");
});

test("the message keeps the guest's words and adds what to do", () => {
  const e = errnoError(39, "Directory not empty", "delete", "/tmp/d");
  assert.equal(e.code, "FILE_NOT_EMPTY");
  assert.match(e.message, /^delete \/tmp\/d: Directory not empty; .*recursive=true/);
  assert.equal(e.details?.errno, 39);
});

test("identity: bad input is INVALID_ARGUMENT, an agent without IDENTITY is AGENT_UNSUPPORTED_VERSION, the rest INTERNAL", () => {
  assert.equal(errnoCode(22, "identity"), "INVALID_ARGUMENT");
  assert.equal(errnoCode(38, "identity"), "AGENT_UNSUPPORTED_VERSION");
  assert.equal(errnoCode(12, "identity"), "GUEST_RESOURCE_EXHAUSTED");
  assert.equal(errnoCode(1, "identity"), "INTERNAL", "EPERM: the guest's own refusal, not a file permission");
  assert.equal(errnoCode(61, "identity"), "INTERNAL", "ENODATA");
});

test("readdir and rename: an agent that predates them (ENOSYS) is AGENT_UNSUPPORTED_VERSION, naming the fix", () => {
  assert.equal(errnoCode(38, "readdir"), "AGENT_UNSUPPORTED_VERSION");
  assert.equal(errnoCode(38, "rename"), "AGENT_UNSUPPORTED_VERSION");
  assert.match(errnoError(38, "message type 0x34 is not supported", "readdir", "/etc").message, /rebuild the guest/);
  assert.equal(errnoCode(38, "read"), "AGENT_PROTOCOL_ERROR", "other file operations keep their mapping");
});
