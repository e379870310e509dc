/**
 * Runs the protocol fuzzer (guest/fuzz: frame parser, field parser, request decoders and encoder
 * under libFuzzer with ASan and UBSan) for a bounded time and fails on any crash.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";
import { GUEST_DIR } from "./harness.js";

const SECONDS = 20;

function hasClang(): boolean {
  try {
    execFileSync("clang", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

test(`the frame/field parser survives ${SECONDS} s of libFuzzer with ASan/UBSan`, { skip: !hasClang() && "clang is not installed", timeout: (SECONDS + 120) * 1000 }, async (t) => {
  const { code, out } = await new Promise<{ code: number; out: string }>((resolve) => {
    // Its own process group, so a timeout kills run.sh and the fuzzer it started together.
    const child = spawn(join(GUEST_DIR, "fuzz/run.sh"), [String(SECONDS)], { detached: true, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (b: Buffer) => (out += b.toString()));
    child.stderr.on("data", (b: Buffer) => (out += b.toString()));
    const killGroup = () => {
      if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, "SIGKILL");
    };
    const timer = setTimeout(killGroup, (SECONDS + 110) * 1000);
    t.after(killGroup);
    child.once("close", (status) => {
      clearTimeout(timer);
      resolve({ code: status ?? 1, out });
    });
  });
  t.diagnostic(out.trim().split("\n").slice(-3).join(" | "));
  assert.equal(code, 0, `fuzzer failed:\n${out}`);
  assert.match(out, /no crash/);
});
