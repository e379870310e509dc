/**
 * One streamed exec over a WebSocket (docs/exec-stream.md): the start message, stdin and control
 * messages in, typed output and the exit out. Bounded both ways:
 * - output: the agent's per-exec flow control; a chunk is acknowledged to the guest only once the
 *   socket has written it, so a client that reads slowly stalls its own process, and the daemon
 *   holds at most the exec's window (1 MiB, EXEC_STREAM_WINDOW) for it;
 * - stdin: while more than STDIN_PAUSE bytes wait for the agent connection, the socket is not read
 *   (one message of at most EXEC_WS_MAX_MESSAGE may still arrive), so the client's TCP window
 *   closes instead of the daemon buffering.
 */
import { constants } from "node:os";
import type { FastifyBaseLogger } from "fastify";
import type { WebSocket } from "ws";
import { TypeCompiler } from "@sinclair/typebox/compiler";
import { HyperfleetError, isHyperfleetError } from "../core/errors.js";
import type { ExecStreamExit, ExecStreamHandle, ExecStreamRequest } from "../core/ports/services.js";
import { type ExecWsControl, ExecWsControls, ExecWsStart, ExecWsStream, WS_ERROR_CLOSE_BASE } from "../contract/exec.js";
import { errorBody } from "./errors.js";
import { httpStatus } from "./http-status.js";
import { fieldName } from "./validation.js";

/** Stdin waiting for the agent connection beyond which the socket is not read. */
const STDIN_PAUSE = 1024 * 1024;
/** A client that connects and never says what to run is dropped after this long. */
export const START_TIMEOUT_MS = 10_000;

const OPEN = 1;
const startCheck = TypeCompiler.Compile(ExecWsStart);
const controlChecks = new Map(Object.entries(ExecWsControls).map(([type, schema]) => [type, TypeCompiler.Compile(schema)]));

export type StartExec = (req: ExecStreamRequest) => Promise<ExecStreamHandle>;

/** Close code of an error: 4000 + its HTTP status. */
export function closeCodeOf(e: HyperfleetError): number {
  return WS_ERROR_CLOSE_BASE + httpStatus(e.code);
}

interface Checker {
  Check(v: unknown): boolean;
  Errors(v: unknown): { First(): { path: string; message: string } | undefined };
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new HyperfleetError("INVALID_ARGUMENT", `the ${what} must be JSON`, { details: { field: what } });
  }
}

/** Checks a message against a schema; INVALID_ARGUMENT naming the field (`rows`, `command[0]`). */
function checked<T>(v: unknown, check: Checker, what: string): T {
  if (check.Check(v)) return v as T;
  const first = check.Errors(v).First();
  const field = fieldName(first?.path ?? "", what);
  throw new HyperfleetError("INVALID_ARGUMENT", `${field}: ${first?.message ?? "is invalid"}`, { details: { field } });
}

function parseControl(text: string): ExecWsControl {
  const v = parseJson(text, "control message");
  const type = (v as { type?: unknown } | null)?.type;
  const check = typeof type === "string" ? controlChecks.get(type) : undefined;
  if (!check) {
    throw new HyperfleetError("INVALID_ARGUMENT", `type: a control message's type is one of ${[...controlChecks.keys()].join(", ")}`, { details: { field: "type" } });
  }
  return checked<ExecWsControl>(v, check, "control message");
}

function signalNumber(s: number | string): number {
  if (typeof s === "number") return s;
  const n = (constants.signals as Record<string, number | undefined>)[s];
  if (n === undefined) throw new HyperfleetError("INVALID_ARGUMENT", `signal: unknown signal ${s}`, { details: { field: "signal" } });
  return n;
}

export function runExecSession(socket: WebSocket, start: StartExec, log: FastifyBaseLogger): void {
  let state: "waiting" | "starting" | "running" | "done" = "waiting";
  let handle: ExecStreamHandle | null = null;
  // Output the socket has written before the handle existed (frames can follow EXEC_STARTED at once).
  let unacked = 0;
  const stdin: Array<Buffer | "eof"> = [];
  let stdinBytes = 0;
  let pumping = false;
  let wantStdin = true;
  const early: string[] = [];

  const startTimer = setTimeout(() => fail(new HyperfleetError("REQUEST_TIMEOUT", `no start message within ${START_TIMEOUT_MS} ms; send {"command": [...]} first`)), START_TIMEOUT_MS);

  const fail = (e: unknown) => {
    if (state === "done") return;
    state = "done";
    clearTimeout(startTimer);
    handle?.kill();
    const he = isHyperfleetError(e) ? e : new HyperfleetError("INTERNAL", "internal error", { cause: e });
    if (he.code === "INTERNAL") log.error({ err: e }, "exec websocket failed");
    if (socket.readyState !== OPEN) return;
    socket.send(JSON.stringify({ type: "error", ...errorBody(he) }));
    closeWith(closeCodeOf(he), he.code);
  };

  const finish = (x: ExecStreamExit) => {
    if (state === "done") return;
    state = "done";
    if (socket.readyState !== OPEN) return;
    socket.send(JSON.stringify({ type: "exit", exit_code: x.exitCode, signal: x.signal, timed_out: x.timedOut, duration_ms: x.durationMs }));
    closeWith(1000);
  };

  // A paused socket would never read the client's answer to our close frame (the closing
  // handshake would then wait for ws's 30 s timeout); stdin after this is dropped anyway.
  const closeWith = (code: number, reason?: string) => {
    socket.resume();
    socket.close(code, reason);
  };

  const output = (stream: number) => (chunk: Buffer) => {
    if (socket.readyState !== OPEN) return;
    const msg = Buffer.allocUnsafe(chunk.length + 1);
    msg[0] = stream;
    chunk.copy(msg, 1);
    // The guest may send more only once this left the daemon: that is the whole backpressure.
    socket.send(msg, { binary: true }, (err) => {
      if (err) return;
      if (handle) handle.ack(chunk.length);
      else unacked += chunk.length;
    });
  };

  const pump = async () => {
    if (pumping || !handle) return;
    pumping = true;
    try {
      while (stdin.length && state === "running") {
        const x = stdin.shift()!;
        if (x === "eof") handle.end();
        else {
          await handle.write(x);
          stdinBytes -= x.length;
        }
      }
    } catch (e) {
      fail(e);
    } finally {
      pumping = false;
    }
    if (socket.isPaused && stdinBytes <= STDIN_PAUSE && state === "running") socket.resume();
  };

  const queueStdin = (x: Buffer | "eof") => {
    if (!wantStdin) return;
    stdin.push(x);
    if (x !== "eof") stdinBytes += x.length;
    if (stdinBytes > STDIN_PAUSE) socket.pause();
    void pump();
  };

  const onStart = (text: string) => {
    const m = checked<ExecWsStart>(parseJson(text, "start message"), startCheck, "start message");
    clearTimeout(startTimer);
    state = "starting";
    wantStdin = m.stdin !== false;
    // Until the process runs, stdin has nowhere to go: read no more than what already arrived.
    socket.pause();
    start({
      command: m.command,
      stdin: wantStdin,
      onStdout: output(ExecWsStream.STDOUT),
      onStderr: output(ExecWsStream.STDERR),
      ...(m.env !== undefined && { env: m.env }),
      ...(m.cwd !== undefined && { cwd: m.cwd }),
      ...(m.user !== undefined && { user: m.user }),
      ...(m.tty !== undefined && { tty: m.tty }),
      ...(m.timeout_ms !== undefined && { timeoutMs: m.timeout_ms }),
    }).then(
      (h) => {
        if (state === "done") return h.kill(); // the client left while it started
        handle = h;
        state = "running";
        if (unacked) h.ack(unacked);
        unacked = 0;
        socket.send(JSON.stringify({ type: "started", pid: h.pid }));
        h.done.then(finish, fail);
        try {
          for (const text of early.splice(0)) onControl(text);
        } catch (e) {
          return fail(e);
        }
        socket.resume();
        void pump();
      },
      (e: unknown) => fail(e),
    );
  };

  const onControl = (text: string) => {
    const c = parseControl(text);
    if (c.type === "eof") return queueStdin("eof");
    if (c.type === "signal") return handle?.signal(signalNumber(c.signal));
    handle?.resize(c.rows, c.cols);
  };

  socket.on("message", (data: Buffer, isBinary: boolean) => {
    if (state === "done") return;
    try {
      if (state === "waiting") {
        if (isBinary) throw new HyperfleetError("INVALID_ARGUMENT", 'the first message must be the JSON start message {"command": [...]}', { details: { field: "start message" } });
        return onStart(data.toString("utf8"));
      }
      if (isBinary) return queueStdin(data);
      const text = data.toString("utf8");
      // A resize or signal sent while the process starts waits for it (few: the socket is paused).
      if (!handle) {
        parseControl(text);
        return void early.push(text);
      }
      onControl(text);
    } catch (e) {
      fail(e);
    }
  });

  socket.on("close", () => {
    clearTimeout(startTimer);
    if (state === "done") return;
    // The client is gone: nothing would read the output, so the process goes too.
    state = "done";
    handle?.kill();
  });
}
