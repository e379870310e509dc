/**
 * Streaming exec over GET /machines/:id/exec/ws (docs/exec-stream.md): stdout and stderr as node
 * Readables (async iterable), stdin written as it comes, signals, terminal resize, and `done`
 * with the exit. A consumer that stops reading stdout pauses the socket, so the guest command
 * waits instead of anything filling memory (the daemon's per-exec window does the rest).
 */
import { Readable } from "node:stream";
import WebSocket from "ws";
import type { IncomingMessage } from "node:http";
import { ExecWsStream, type ExecWsStart } from "../contract/exec.js";
import { attempt, err, ok, type Result } from "../core/result.js";
import { errorFromBody, HyperfleetApiError } from "./errors.js";
import { machinePath } from "./paths.js";
import type { Transport } from "./transport.js";

export type ExecStreamOptions = Omit<ExecWsStart, "command">;

export interface ExecExit {
  exit_code: number | null;
  signal: number | null;
  timed_out: boolean;
  duration_ms: number;
}

/**
 * Read both stdout and stderr (or pipe them): one left unread fills to its highWaterMark and then
 * holds the socket, and with it the command and the `exit` message, as a child process's pipe would.
 */
export class ExecStream {
  readonly stdout: Readable = new Readable({ read: () => this.resumeIfRoom() });
  readonly stderr: Readable = new Readable({ read: () => this.resumeIfRoom() });
  /** The guest pid once the command runs; an Err when it could not start. */
  readonly started: Promise<Result<number>>;
  /** The exit; an Err (HyperfleetApiError) when the session failed or the connection went. */
  readonly done: Promise<Result<ExecExit>>;

  constructor(private readonly ws: WebSocket) {
    let onStart!: (r: Result<number>) => void;
    let onDone!: (r: Result<ExecExit>) => void;
    this.started = new Promise((r) => (onStart = r));
    this.done = new Promise((r) => (onDone = r));
    let ended = false;
    const finish = (r: Result<ExecExit>) => {
      if (ended) return;
      ended = true;
      this.stdout.push(null);
      this.stderr.push(null);
      onStart(r.ok ? err(new HyperfleetApiError("INTERNAL", "the command ended before it was reported started")) : r);
      onDone(r);
    };
    ws.on("unexpected-response", (_req: unknown, res: IncomingMessage) => {
      const parts: Buffer[] = [];
      let size = 0;
      res.on("data", (d: Buffer) => {
        if (size < 65536) parts.push(d);
        size += d.length;
      });
      res.on("end", () => finish(err(errorFromBody(res.statusCode ?? 0, (res.headers["x-request-id"] as string | undefined) ?? null, Buffer.concat(parts).toString("utf8")))));
    });
    ws.on("error", (e: Error) => finish(err(new HyperfleetApiError("API_UNREACHABLE", `exec stream: ${e.message}`, { cause: e }))));
    ws.on("message", (data: Buffer, isBinary: boolean) => {
      if (isBinary) {
        const out = data[0] === ExecWsStream.STDERR ? this.stderr : this.stdout;
        if (!out.push(data.subarray(1))) ws.pause();
        return;
      }
      let m: { type?: string; pid?: number; error?: { code: string; message: string } } & Partial<ExecExit>;
      try {
        m = JSON.parse(data.toString("utf8")) as typeof m;
      } catch {
        return;
      }
      if (m.type === "started") onStart(ok(m.pid ?? 0));
      else if (m.type === "exit") finish(ok({ exit_code: m.exit_code ?? null, signal: m.signal ?? null, timed_out: m.timed_out === true, duration_ms: m.duration_ms ?? 0 }));
      else if (m.type === "error" && m.error) finish(err(errorFromBody(0, null, JSON.stringify({ error: m.error }))));
    });
    ws.on("close", (code: number) => finish(err(new HyperfleetApiError("API_UNREACHABLE", `exec stream: the connection closed (${code}) before the command ended`))));
  }

  /** Reading resumes only when neither stream is full: an unread one must not grow without bound. */
  private resumeIfRoom(): void {
    if (this.stdout.readableLength < this.stdout.readableHighWaterMark && this.stderr.readableLength < this.stderr.readableHighWaterMark) this.ws.resume();
  }

  /** Stdin bytes (needs `stdin: true`, the default). Resolves once handed to the socket. */
  write(data: Uint8Array | string): Promise<void> {
    return new Promise((resolve, reject) => this.ws.send(typeof data === "string" ? Buffer.from(data) : Buffer.from(data.buffer, data.byteOffset, data.byteLength), { binary: true }, (e) => (e ? reject(e) : resolve())));
  }

  /** End of stdin (on a terminal: one ^D). */
  end(): void {
    this.control({ type: "eof" });
  }

  /** A signal (number or name such as "SIGINT") to the command's process group. */
  signal(signal: number | string): void {
    this.control({ type: "signal", signal });
  }

  /** The terminal's new size (with `tty`). */
  resize(rows: number, cols: number): void {
    this.control({ type: "resize", rows, cols });
  }

  /** Closes the connection: the daemon kills the command's process group. */
  close(): void {
    this.ws.close(1000);
  }

  private control(m: object): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(m));
  }
}

/** Opens the socket and sends the start message; the Result is Err only when the socket cannot open. */
export function openExecStream(t: Transport, id: string, command: string[], opts: ExecStreamOptions = {}): Promise<Result<ExecStream>> {
  return attempt(async () => {
    const base = t.opts.url.replace(/^http/, "ws").replace(/\/$/, "");
    const ws = new WebSocket(`${base}${machinePath(id, "/exec/ws")}`, undefined, {
      headers: t.opts.apiKey !== undefined ? { authorization: `Bearer ${t.opts.apiKey}` } : {},
      handshakeTimeout: t.opts.timeoutMs,
    });
    const s = new ExecStream(ws);
    await new Promise<void>((resolve) => {
      ws.once("open", () => {
        ws.send(JSON.stringify({ command, ...opts }));
        resolve();
      });
      void s.done.then(() => resolve());
    });
    const d = await Promise.race([s.done, Promise.resolve(null)]);
    if (d !== null && !d.ok) throw d.error;
    return s;
  });
}
