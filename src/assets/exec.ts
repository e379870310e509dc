/**
 * Runs the host tools the asset build needs (apt, dpkg-deb, depmod, mkfs.ext4, ...) with a timeout,
 * turning "not installed" into HOST_TOOL_MISSING with the Debian package to install.
 */
import { spawn } from "node:child_process";
import { HyperfleetError } from "../core/errors.js";

/** Debian package that provides each tool we call, for the "install X" hint. */
const PACKAGE_OF: Record<string, string> = {
  "apt-get": "apt",
  "apt-cache": "apt",
  "dpkg-deb": "dpkg",
  depmod: "kmod",
  "mkfs.ext4": "e2fsprogs",
  xz: "xz-utils",
  zstd: "zstd",
  make: "make",
  "musl-gcc": "musl-tools",
  "qemu-system-x86_64": "qemu-system-x86",
};

/** Options of runTool. */
export interface RunOptions {
  cwd?: string;
  /** Kill the tool after this long (default 120 s). */
  timeoutMs?: number;
  signal?: AbortSignal;
  env?: NodeJS.ProcessEnv;
}

/** What a successful run printed. */
export interface RunResult {
  stdout: Buffer;
  stderr: string;
}

/**
 * Runs `cmd args` and resolves with its output if it exits 0. Rejects with HOST_TOOL_MISSING if
 * the tool is not installed, and with a build failure carrying the tool's stderr otherwise.
 */
export function runTool(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      // eslint-disable-next-line no-restricted-properties -- inherited by the tool, filtered by toolEnv; not configuration
      env: opts.env ?? toolEnv(process.env),
      stdio: ["ignore", "pipe", "pipe"],
      signal: opts.signal,
      killSignal: "SIGKILL",
    });
    // Our own timer, not spawn's `timeout` option: Node leaves that one armed when the spawn itself
    // fails (ENOENT), which holds the event loop for the whole timeout.
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 120_000);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    child.on("error", (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (e.code === "ENOENT") {
        const pkg = PACKAGE_OF[cmd];
        reject(new HyperfleetError("HOST_TOOL_MISSING", `${cmd} not found${pkg ? `: install it with \`apt-get install ${pkg}\`` : ""}`, { cause: e, details: { tool: cmd } }));
      } else reject(toolFailed(cmd, args, e.message, e));
    });
    child.on("close", (code, sig) => {
      clearTimeout(timer);
      const stderr = Buffer.concat(err).toString("utf8");
      if (code === 0) resolve({ stdout: Buffer.concat(out), stderr });
      else reject(toolFailed(cmd, args, sig ? `killed by ${sig}` : `exit code ${code}`, undefined, stderr));
    });
  });
}

/**
 * The environment a host tool gets unless told otherwise: the daemon's own, without our
 * configuration. HYPERFLEET_API_KEY and friends are secrets no tool needs, and a tool that logs or
 * forwards its environment (mkfs, umoci, apt hooks) must not be able to leak them.
 */
export function toolEnv(from: Readonly<Record<string, string | undefined>>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(from)) if (v !== undefined && !k.startsWith("HYPERFLEET_")) env[k] = v;
  return env;
}

/**
 * The error for a host tool that ran but failed. There is no dedicated code yet, so it is INTERNAL
 * with the tool, arguments and stderr in details.
 */
export function toolFailed(cmd: string, args: readonly string[], why: string, cause?: unknown, stderr = ""): HyperfleetError {
  const tail = stderr.trim().split("\n").slice(-5).join("\n");
  return new HyperfleetError("INTERNAL", `${cmd} ${args.join(" ")} failed (${why})${tail ? `:\n${tail}` : ""}`, {
    cause,
    details: { tool: cmd, args: [...args], stderr: tail },
  });
}
