/**
 * Runs the `hyperfleet` executable (bin/hyperfleet.js, as a user runs it) against a test daemon:
 * its own HOME, HYPERFLEET_URL and HYPERFLEET_API_KEY, nothing else of the test's environment but
 * PATH and what `extraEnv` adds. Output is collected whole (the tests' commands print little).
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { KEY } from "../api/helpers.js";

export const BIN = fileURLToPath(new URL("../../bin/hyperfleet.js", import.meta.url));

export interface CliRun {
  code: number | null;
  out: string;
  err: string;
}

export interface CliTarget {
  url: string;
  home: string;
  extraEnv?: Record<string, string>;
  /** Killed (SIGKILL) after this long; default: never. */
  timeoutMs?: number;
}

export function runCli(t: CliTarget, args: string[]): Promise<CliRun> {
  const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: t.home, HYPERFLEET_URL: t.url, HYPERFLEET_API_KEY: KEY, ...t.extraEnv };
  const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr.on("data", (c: Buffer) => (err += c.toString()));
  const timer = t.timeoutMs === undefined ? undefined : setTimeout(() => child.kill("SIGKILL"), t.timeoutMs);
  return new Promise((resolve) => child.once("close", (code) => (clearTimeout(timer), resolve({ code, out, err }))));
}
