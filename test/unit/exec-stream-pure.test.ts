/** The pure pieces of streamed exec and background processes: exit statuses, close codes, the process index. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { HyperfleetError } from "../../src/core/errors.js";
import { closeCodeOf } from "../../src/api/exec-ws-session.js";
import { errorStatus, exitStatus } from "../../src/cli/exec-session.js";
import { parseIndex, processLogPath } from "../../src/machines/processes.js";

test("a session's exit status follows the shell: the code, else 128 + the signal", () => {
  assert.equal(exitStatus({ exit_code: 0, signal: null }), 0);
  assert.equal(exitStatus({ exit_code: 5, signal: null }), 5);
  assert.equal(exitStatus({ exit_code: null, signal: 2 }), 130);
  assert.equal(exitStatus({ exit_code: null, signal: 9 }), 137);
});

test("a command that cannot run exits like docker exec: 127, 126, else 1", () => {
  assert.equal(errorStatus("EXEC_NOT_FOUND"), 127);
  assert.equal(errorStatus("EXEC_PERMISSION_DENIED"), 126);
  assert.equal(errorStatus("MACHINE_NOT_RUNNING"), 1);
});

test("close codes are 4000 + the code's HTTP status", () => {
  assert.equal(closeCodeOf(new HyperfleetError("INVALID_ARGUMENT", "x")), 4400);
  assert.equal(closeCodeOf(new HyperfleetError("MACHINE_NOT_RUNNING", "x")), 4409);
  assert.equal(closeCodeOf(new HyperfleetError("REQUEST_TIMEOUT", "x")), 4408);
  assert.equal(closeCodeOf(new HyperfleetError("AGENT_UNSUPPORTED_VERSION", "x")), 4502);
});

test("the process index: good lines kept in order, torn and foreign lines skipped", () => {
  const good = { tag: "0123456789abcdef", pid: 42, command: ["sleep", "1"], started_at: "2026-12-05T00:00:00.000Z" };
  const text = [JSON.stringify(good), '{"tag":"../../etc","pid":1,"command":[]}', '{"tag":"0123456789abcdef","pid":', "", JSON.stringify({ ...good, pid: 43 })].join("\n");
  assert.deepEqual(
    parseIndex(text).map((l) => l.pid),
    [42, 43],
  );
  assert.equal(processLogPath(good.tag), "/run/hyperfleet/processes/0123456789abcdef.log");
});
