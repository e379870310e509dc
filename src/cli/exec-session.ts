/**
 * The interactive client of GET /machines/:id/exec/ws (docs/exec-stream.md), through the SDK's
 * execStream, for `hyperfleet exec -t`, `run -it` and `hyperfleet shell`: the local terminal in raw mode (Ctrl-C, Ctrl-D and the rest go to the guest
 * as bytes, the guest's terminal turns them into signals and EOF), its size followed through
 * SIGWINCH, stdout backpressure (the socket is not read while the local terminal lags), and the
 * guest's exit code as ours. Without a terminal, stdin is piped and ends with an `eof` message.
 */
import type { HyperfleetError } from "../core/errors.js";
import type { HyperfleetClient } from "../sdk/index.js";

export interface ExecSessionOptions {
  client: HyperfleetClient;
  machineId: string;
  command: string[];
  /** Run on a PTY sized like `output` (which must then be a TTY). */
  tty: boolean;
  /** Forward `input` as stdin (else the command reads /dev/null). */
  interactive: boolean;
  env?: Record<string, string>;
  cwd?: string;
  user?: string;
  input: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  output: NodeJS.WritableStream & { columns?: number; rows?: number; on(event: "resize", fn: () => void): unknown };
  errors: NodeJS.WritableStream;
}

/** Shell conventions for the exit status of a session. */
export function exitStatus(m: { exit_code: number | null; signal: number | null }): number {
  if (m.exit_code !== null) return m.exit_code;
  return 128 + (m.signal ?? 0);
}

/** What `docker exec` answers when the command cannot run: 127 not found, 126 not executable, else 1. */
export function errorStatus(code: string): number {
  if (code === "EXEC_NOT_FOUND") return 127;
  if (code === "EXEC_PERMISSION_DENIED") return 126;
  return 1;
}

/** Runs the command; resolves with the exit status to exit with (errors are printed to `errors`). */
export async function runExecSession(o: ExecSessionOptions): Promise<number> {
  const size = () => ({ rows: o.output.rows || 24, cols: o.output.columns || 80 });
  const raw = o.tty && o.input.isTTY === true && typeof o.input.setRawMode === "function";
  const say = (msg: string) => o.errors.write(`${raw ? "\r\n" : ""}hyperfleet: ${msg}\n`);
  const failed = (e: HyperfleetError) => {
    say(`${e.code}: ${e.message}`);
    return errorStatus(e.code);
  };

  const opened = await o.client.machines.execStream(o.machineId, o.command, {
    stdin: o.interactive,
    ...(o.tty && { tty: size() }),
    ...(o.env !== undefined && { env: o.env }),
    ...(o.cwd !== undefined && { cwd: o.cwd }),
    ...(o.user !== undefined && { user: o.user }),
  });
  if (!opened.ok) return failed(opened.error);
  const s = opened.value;
  const onInput = (b: Buffer) => void s.write(b).catch(() => undefined);
  const onEnd = () => s.end();
  const onResize = () => s.resize(size().rows, size().cols);
  if (raw) o.input.setRawMode!(true);
  if (o.tty) o.output.on("resize", onResize);
  if (o.interactive) {
    o.input.on("data", onInput);
    o.input.on("end", onEnd);
    o.input.resume();
  }
  // pipe: a local terminal slower than the guest stops the reads, and the guest then waits.
  s.stdout.pipe(o.output as NodeJS.WritableStream, { end: false });
  s.stderr.pipe(o.errors as NodeJS.WritableStream, { end: false });
  const done = await s.done;
  await Promise.all([drained(s.stdout), drained(s.stderr)]);
  o.input.off("data", onInput);
  o.input.off("end", onEnd);
  o.output.off("resize", onResize);
  if (raw) o.input.setRawMode!(false);
  o.input.pause();
  if (!done.ok) return failed(done.error);
  return exitStatus(done.value);
}

/** Resolves once everything the stream held was handed on. */
function drained(r: NodeJS.ReadableStream & { readableEnded?: boolean }): Promise<void> {
  if (r.readableEnded === true) return Promise.resolve();
  return new Promise((resolve) => r.once("end", () => resolve()));
}
