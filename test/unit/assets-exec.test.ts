import { test } from "node:test";
import assert from "node:assert/strict";
import { runTool } from "../../src/assets/exec.js";
import { isHyperfleetError } from "../../src/core/errors.js";

test("exec: a missing tool is HOST_TOOL_MISSING with the package to install", async () => {
  await assert.rejects(runTool("depmod-not-installed-here", []), (e) => isHyperfleetError(e, "HOST_TOOL_MISSING") && /not found/.test(e.message));
  await assert.rejects(runTool("/nonexistent/mkfs.ext4", []), (e) => isHyperfleetError(e, "HOST_TOOL_MISSING"));
});

test("exec: output on success, stderr tail and exit code on failure, timeouts kill", async () => {
  const ok = await runTool("sh", ["-c", "printf out; printf err >&2"]);
  assert.equal(ok.stdout.toString(), "out");
  assert.equal(ok.stderr, "err");
  await assert.rejects(runTool("sh", ["-c", "echo broken >&2; exit 3"]), (e) => isHyperfleetError(e, "INTERNAL") && /exit code 3/.test(e.message) && /broken/.test(e.message));
  await assert.rejects(runTool("sleep", ["5"], { timeoutMs: 100 }), /killed by SIGKILL/);
});

test("exec: host tools do not see the daemon's HYPERFLEET_ variables (the API key among them)", async () => {
  process.env.HYPERFLEET_TOOL_ENV_PROBE = "secret-probe-value";
  try {
    const { stdout } = await runTool("sh", ["-c", "env"]);
    const env = stdout.toString();
    assert.doesNotMatch(env, /HYPERFLEET_/);
    assert.match(env, /^PATH=/m, "the rest of the environment is kept");
  } finally {
    delete process.env.HYPERFLEET_TOOL_ENV_PROBE;
  }
});
