/**
 * A test client of GET /machines/:id/exec/ws (docs/exec-stream.md) on the `ws` package: collects
 * stdout, stderr and the JSON messages, and can stop reading (pause) to act as a slow client.
 */
import WebSocket from "ws";
import type { IncomingMessage } from "node:http";
import { KEY } from "./helpers.js";

export interface WsExit {
  type: "exit";
  exit_code: number | null;
  signal: number | null;
  timed_out: boolean;
  duration_ms: number;
}

export interface WsError {
  type: "error";
  error: { code: string; message: string; field?: string };
}

/** An upgrade the server refused with a plain HTTP answer. */
export class Refused extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
  ) {
    super(`upgrade refused: ${status} ${body}`);
  }
}

export class ExecWs {
  stdout = Buffer.alloc(0);
  stderr = Buffer.alloc(0);
  stdoutBytes = 0;
  /** Keep stdout only up to this many bytes (counted beyond it). */
  keepStdout = 16 * 1024 * 1024;
  readonly messages: Array<Record<string, unknown>> = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private waiters: Array<() => void> = [];

  private constructor(readonly ws: WebSocket) {
    ws.on("message", (data: Buffer, isBinary: boolean) => {
      if (isBinary) {
        const body = data.subarray(1);
        if (data[0] === 1) {
          if (this.stdout.length < this.keepStdout) this.stdout = Buffer.concat([this.stdout, body]);
          this.stdoutBytes += body.length;
        } else if (data[0] === 2) this.stderr = Buffer.concat([this.stderr, body]);
        else throw new Error(`unknown stream byte ${data[0]}`);
      } else {
        this.messages.push(JSON.parse(data.toString()) as Record<string, unknown>);
      }
      this.wake();
    });
    this.closed = new Promise((resolve) =>
      ws.once("close", (code: number, reason: Buffer) => {
        resolve({ code, reason: reason.toString() });
        this.wake();
      }),
    );
    ws.on("error", () => undefined);
  }

  static open(base: string, id: string, opts: { headers?: Record<string, string>; protocols?: string[] } = {}): Promise<ExecWs> {
    const url = `${base.replace(/^http/, "ws")}/machines/${id}/exec/ws`;
    const ws = new WebSocket(url, opts.protocols, { headers: opts.headers ?? { authorization: `Bearer ${KEY}` } });
    const client = new ExecWs(ws);
    return new Promise((resolve, reject) => {
      ws.once("open", () => resolve(client));
      ws.once("unexpected-response", (_req: unknown, res: IncomingMessage) => {
        let body = "";
        res.on("data", (d: Buffer) => (body += d.toString()));
        res.on("end", () => reject(new Refused(res.statusCode ?? 0, body)));
      });
      ws.once("error", reject);
    });
  }

  start(msg: Record<string, unknown>): void {
    this.ws.send(JSON.stringify(msg));
  }

  stdin(data: Buffer | string): void {
    this.ws.send(Buffer.from(data), { binary: true });
  }

  control(msg: Record<string, unknown>): void {
    this.ws.send(JSON.stringify(msg));
  }

  message<T>(type: string): T | undefined {
    return this.messages.find((m) => m.type === type) as T | undefined;
  }

  /** Resolves when pred holds; rejects after timeoutMs or when the socket closed first. */
  async until(pred: () => boolean, timeoutMs = 20_000, what = "condition"): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let isClosed = false;
    void this.closed.then(() => (isClosed = true));
    while (!pred()) {
      if (isClosed) throw new Error(`closed before ${what}; stdout ${JSON.stringify(this.stdout.toString().slice(-300))}, messages ${JSON.stringify(this.messages)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; stdout ${JSON.stringify(this.stdout.toString().slice(-300))}, messages ${JSON.stringify(this.messages)}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 200));
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** The exit message and the close, once both came. */
  async finished(timeoutMs = 30_000): Promise<{ exit: WsExit; close: { code: number; reason: string } }> {
    await this.until(() => this.message("exit") !== undefined || this.message("error") !== undefined, timeoutMs, "exit");
    const close = await this.closed;
    const exit = this.message<WsExit>("exit");
    if (!exit) throw new Error(`ended with an error: ${JSON.stringify(this.message("error"))}`);
    return { exit, close };
  }

  /** The error message and the close code of a session that failed. */
  async failed(timeoutMs = 30_000): Promise<{ error: WsError["error"]; close: { code: number; reason: string } }> {
    let timer: NodeJS.Timeout | undefined;
    const close = await Promise.race([this.closed, new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error("no close")), timeoutMs)))]).finally(() =>
      clearTimeout(timer),
    );
    const e = this.message<WsError>("error");
    if (!e) throw new Error(`closed ${close.code} without an error message: ${JSON.stringify(this.messages)}`);
    return { error: e.error, close };
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}
