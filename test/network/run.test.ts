/**
 * The command runner of VM networking (src/network/run.ts): real processes, no host change. A
 * missing program says which package to install, also when `ip netns exec` is the one that misses
 * it; failures carry stderr; time and output are bounded; "already gone" is success.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { HyperfleetError } from "../../src/core/errors.js";
import { probe, run } from "../../src/network/run.js";
import { deleteNetns } from "../../src/network/commands.js";

const root = process.getuid?.() === 0;
const code = (c: string, re?: RegExp) => (e: unknown) => e instanceof HyperfleetError && e.code === c && (re === undefined || re.test(e.message));

test("a missing program is HOST_TOOL_MISSING naming the package; a failure is NETWORK_SETUP_FAILED with stderr", async () => {
  await assert.rejects(run({ argv: ["hf-no-such-tool-x"] }), code("HOST_TOOL_MISSING", /hf-no-such-tool-x not found/));
  await assert.rejects(
    run({ argv: ["sh", "-c", "echo 'RTNETLINK answers: File exists' >&2; exit 2"] }),
    code("NETWORK_SETUP_FAILED", /exit code 2\):\nRTNETLINK answers: File exists/),
  );
  assert.equal(await run({ argv: ["cat"], input: "fed on stdin\n" }), "fed on stdin\n");
  const o = await probe({ argv: ["sh", "-c", "echo gone >&2; exit 1"] });
  assert.deepEqual(o, { code: 1, stdout: "", stderr: "gone\n" }, "probe reports a failure as a fact");
  // A program that exits without reading a large input: no EPIPE escapes.
  assert.equal(await run({ argv: ["true"], input: "x".repeat(4 << 20) }), "");
});

test("time and output are bounded", async () => {
  await assert.rejects(run({ argv: ["sleep", "10"] }, { timeoutMs: 200, maxOutputBytes: 1024 }), code("NETWORK_SETUP_FAILED", /timed out after 200 ms/));
  await assert.rejects(
    run({ argv: ["head", "-c", "1000000", "/dev/zero"] }, { timeoutMs: 10_000, maxOutputBytes: 1024 }),
    code("NETWORK_SETUP_FAILED", /printed more than 1024 bytes/),
  );
});

test("inside a namespace: a missing nft is HOST_TOOL_MISSING; deleting an absent namespace is done", { skip: root ? false : "needs root" }, async () => {
  const ns = `hft-${randomBytes(4).toString("hex")}-run`;
  execFileSync("ip", ["netns", "add", ns]);
  try {
    await assert.rejects(run({ argv: ["ip", "netns", "exec", ns, "hf-no-such-nft"] }), code("HOST_TOOL_MISSING", /hf-no-such-nft not found/));
  } finally {
    execFileSync("ip", ["netns", "del", ns]);
  }
  assert.equal(await run(deleteNetns(ns)), "", "already gone counts as done");
  assert.doesNotMatch(execFileSync("ip", ["netns", "list"], { encoding: "utf8" }), new RegExp(ns));
});
