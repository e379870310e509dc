/**
 * Runs the commands of commands.ts: a timeout, bounded output, and errors that say what to do. A
 * missing program is HOST_TOOL_MISSING with the Debian package; any other failure is
 * NETWORK_SETUP_FAILED carrying the command and the tail of its stderr.
 */
import { execFile } from "node:child_process";
import { HyperfleetError } from "../core/errors.js";
import type { Command } from "./commands.js";

const PACKAGE_OF: Record<string, string> = { ip: "iproute2", nft: "nftables", sysctl: "procps", nsenter: "util-linux" };

export interface RunLimits {
  timeoutMs: number;
  /** Per stream; `ip -j link show` on a host with thousands of VMs is the largest output. */
  maxOutputBytes: number;
}

export const DEFAULT_LIMITS: RunLimits = { timeoutMs: 15_000, maxOutputBytes: 16 * 1024 * 1024 };

export interface Outcome {
  /** Exit code; 0 on success. */
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `cmd` and resolves with its outcome whatever its exit code, so callers can read a failure
 * ("no such namespace") as a fact. Rejects only when it could not run to the end: missing program,
 * timeout, too much output.
 */
export function probe(cmd: Command, limits: RunLimits = DEFAULT_LIMITS): Promise<Outcome> {
  const [file, ...args] = cmd.argv;
  return new Promise((resolve, reject) => {
    const child = execFile(
      file!,
      args,
      {
        timeout: limits.timeoutMs,
        killSignal: "SIGKILL",
        maxBuffer: limits.maxOutputBytes,
        // LC_ALL=C: stderr is matched ("Cannot find device"), so it must not be translated.
        // eslint-disable-next-line no-restricted-properties -- PATH to find ip/nft, not configuration
        env: { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin", LC_ALL: "C" },
      },
      (err, stdout, stderr) => {
        if (err === null) return resolve({ code: 0, stdout, stderr });
        const e = err as NodeJS.ErrnoException & { killed?: boolean; code?: number | string };
        if (e.code === "ENOENT") return reject(toolMissing(file!, e));
        if (e.code === "ERR_CHILD_PROCESS_STDIO_MAXBUFFER") return reject(failed(cmd, `printed more than ${limits.maxOutputBytes} bytes`, "", e));
        if (e.killed) return reject(failed(cmd, `timed out after ${limits.timeoutMs} ms`, stderr, e));
        // `ip netns exec <ns> nft` reports a missing nft itself.
        const inner = /exec of "([^"]+)" failed: No such file or directory/.exec(stderr);
        if (inner) return reject(toolMissing(inner[1]!, e));
        if (typeof e.code !== "number") return reject(failed(cmd, e.message, stderr, e));
        resolve({ code: e.code, stdout, stderr });
      },
    );
    // A program that exits without reading its input must not turn into an unhandled EPIPE.
    child.stdin?.on("error", () => {});
    child.stdin?.end(cmd.input ?? "");
  });
}

/** Runs `cmd` and resolves with its stdout; a failure matching `alreadyDone` counts as success. */
export async function run(cmd: Command, limits: RunLimits = DEFAULT_LIMITS): Promise<string> {
  const o = await probe(cmd, limits);
  if (o.code === 0) return o.stdout;
  if (cmd.alreadyDone?.test(o.stderr)) return "";
  throw commandFailed(cmd, o);
}

/** The error for a command that ran and exited non-zero. */
export function commandFailed(cmd: Command, o: Outcome): HyperfleetError {
  return failed(cmd, `exit code ${o.code}`, o.stderr);
}

export async function runAll(cmds: readonly Command[], limits: RunLimits = DEFAULT_LIMITS): Promise<void> {
  for (const c of cmds) await run(c, limits);
}

function toolMissing(tool: string, cause: unknown): HyperfleetError {
  const pkg = PACKAGE_OF[tool];
  return new HyperfleetError("HOST_TOOL_MISSING", `${tool} not found${pkg ? `: install it with \`apt-get install ${pkg}\`` : ""}`, {
    cause,
    details: { tool },
  });
}

function failed(cmd: Command, why: string, stderr: string, cause?: unknown): HyperfleetError {
  const tail = stderr.trim().split("\n").slice(-5).join("\n").slice(-2000);
  return new HyperfleetError("NETWORK_SETUP_FAILED", `${cmd.argv.join(" ")} failed (${why})${tail ? `:\n${tail}` : ""}`, {
    cause,
    details: { argv: [...cmd.argv], stderr: tail },
  });
}
