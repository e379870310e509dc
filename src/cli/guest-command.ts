/** Running a command in a machine for `exec` and `run`: stdin in, raw output out, its exit status back. */
import { HyperfleetError } from "../core/errors.js";
import type { HyperfleetClient } from "../sdk/index.js";
import type { Ctx } from "./context.js";

export interface GuestCommand {
  command: string[];
  env?: Record<string, string>;
  cwd?: string;
  user?: string;
  /** Seconds. */
  timeout?: number;
  /** Read the CLI's stdin and pass it on (-i). */
  stdin: boolean;
}

/** The daemon's exec body limit is 1 MiB by default (HYPERFLEET_EXEC_MAX_BODY); stdin shares it. */
export const STDIN_MAX = 1024 * 1024;

/** Shell conventions (tini, Docker): 126 not executable, 127 not found, 128+n killed by signal n. */
export const NOT_EXECUTABLE = 126;
export const NOT_FOUND = 127;
/** As coreutils `timeout`: the command was killed at its deadline. */
export const TIMED_OUT = 124;

async function readStdin(ctx: Ctx): Promise<string> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const c of ctx.stdin) {
    const b = Buffer.isBuffer(c) ? c : Buffer.from(String(c));
    size += b.length;
    if (size > STDIN_MAX) {
      throw new HyperfleetError("INVALID_ARGUMENT", `stdin is larger than ${STDIN_MAX} bytes; copy it into the machine with 'hyperfleet cp' and redirect it instead`);
    }
    parts.push(b);
  }
  return Buffer.concat(parts).toString("utf8");
}

/** Runs the command, writes its stdout and stderr as they came (bytes, not text), answers its exit status. */
export async function runInGuest(hf: HyperfleetClient, id: string, g: GuestCommand, ctx: Ctx): Promise<number> {
  const stdin = g.stdin ? await readStdin(ctx) : undefined;
  const r = await hf.machines.exec(id, g.command, {
    encoding: "base64",
    ...(g.env !== undefined && { env: g.env }),
    ...(g.cwd !== undefined && { cwd: g.cwd }),
    ...(g.user !== undefined && { user: g.user }),
    ...(g.timeout !== undefined && { timeout: g.timeout }),
    ...(stdin !== undefined && { stdin }),
  });
  if (!r.ok) {
    const e = r.error;
    if (e.code === "EXEC_TIMEOUT") {
      // The output so far is still the command's: show it before saying it was killed.
      writeB64(ctx, e.details?.stdout, e.details?.stderr);
      ctx.err.write(`hyperfleet: EXEC_TIMEOUT: ${e.message}\n`);
      return TIMED_OUT;
    }
    if (e.code === "EXEC_NOT_FOUND" || e.code === "EXEC_PERMISSION_DENIED") {
      ctx.err.write(`hyperfleet: ${e.code}: ${e.message}\n`);
      return e.code === "EXEC_NOT_FOUND" ? NOT_FOUND : NOT_EXECUTABLE;
    }
    throw e;
  }
  const x = r.value;
  writeB64(ctx, x.stdout, x.stderr);
  if (x.stdout_truncated || x.stderr_truncated) ctx.err.write("hyperfleet: the output was cut at the daemon's limit (HYPERFLEET_EXEC_OUTPUT_MAX)\n");
  return x.exit_code ?? 128 + (x.signal ?? 0);
}

function writeB64(ctx: Ctx, stdout: unknown, stderr: unknown): void {
  if (typeof stdout === "string" && stdout !== "") ctx.out.write(Buffer.from(stdout, "base64"));
  if (typeof stderr === "string" && stderr !== "") ctx.err.write(Buffer.from(stderr, "base64"));
}
