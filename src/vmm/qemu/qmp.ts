/**
 * Minimal QMP client: JSON lines over a UNIX socket. One command in flight at a time is enough for
 * control-plane use (status, powerdown, quit). Events are dropped: a VMM's exit is seen from the
 * socket closing (closedPromise), which nothing can miss.
 */
import { connect, type Socket } from "node:net";
import { HyperfleetError } from "../../core/errors.js";

/**
 * Longest QMP line we keep while waiting for its newline. Our commands' replies are small; a
 * longer line is something we did not ask for (an event with a large payload), dropped unread.
 */
export const QMP_MAX_LINE = 1 << 20;

export class QmpClient {
  private buf = "";
  private skipping = false;
  private queue: Array<{ resolve: (v: unknown) => void; reject: (e: Error) => void }> = [];
  private readonly greeted: Promise<void>;
  private closed = false;
  readonly closedPromise: Promise<void>;

  private constructor(private readonly sock: Socket) {
    let greet!: () => void;
    let noGreeting!: (e: Error) => void;
    // A VMM that dies during startup closes the socket before greeting: reject, never hang.
    this.greeted = new Promise((resolve, reject) => {
      greet = resolve;
      noGreeting = reject;
    });
    let first = true;
    this.closedPromise = new Promise((resolve) => sock.once("close", () => resolve()));
    sock.setEncoding("utf8");
    sock.on("data", (chunk: string) => {
      if (this.skipping) {
        // The rest of an over-long line: drop it up to its newline.
        const end = chunk.indexOf("\n");
        if (end < 0) return;
        this.skipping = false;
        chunk = chunk.slice(end + 1);
      }
      this.buf += chunk;
      let nl: number;
      while ((nl = this.buf.indexOf("\n")) >= 0) {
        const line = this.buf.slice(0, nl).trim();
        this.buf = this.buf.slice(nl + 1);
        if (!line) continue;
        let msg: Record<string, unknown>;
        try {
          msg = JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue;
        }
        if (first && "QMP" in msg) {
          first = false;
          greet();
        } else if ("return" in msg) this.queue.shift()?.resolve(msg.return);
        else if ("error" in msg) {
          const e = msg.error as { class?: string; desc?: string };
          this.queue.shift()?.reject(new HyperfleetError("VMM_CONTROL_FAILED", `QMP: ${e.class ?? "error"}: ${e.desc ?? ""}`));
        }
      }
      // No newline yet: keep at most one line's worth, and skip the rest of an over-long one.
      if (this.buf.length > QMP_MAX_LINE) {
        this.buf = "";
        this.skipping = true;
      }
    });
    sock.on("error", () => undefined);
    sock.on("close", () => {
      this.closed = true;
      noGreeting(new HyperfleetError("VMM_EXITED", "the VMM closed its QMP socket before greeting (it exited during startup)"));
      for (const q of this.queue.splice(0)) q.reject(new HyperfleetError("VMM_EXITED", "QMP connection closed (the VMM exited)"));
    });
  }

  /** Connects and negotiates capabilities. */
  static async connect(path: string, timeoutMs = 5_000): Promise<QmpClient> {
    const sock = await new Promise<Socket>((resolve, reject) => {
      const s = connect(path);
      const t = setTimeout(() => {
        s.destroy();
        reject(new HyperfleetError("VMM_CONTROL_FAILED", `QMP socket ${path} did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      s.once("connect", () => {
        clearTimeout(t);
        resolve(s);
      });
      s.once("error", (e) => {
        clearTimeout(t);
        reject(new HyperfleetError("VMM_CONTROL_FAILED", `cannot connect to QMP socket ${path}: ${e.message}`, { cause: e }));
      });
    });
    const c = new QmpClient(sock);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        c.greeted.then(() => c.execute("qmp_capabilities")),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new HyperfleetError("VMM_CONTROL_FAILED", `QMP on ${path} did not greet within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
    } catch (e) {
      c.close();
      throw e;
    } finally {
      clearTimeout(timer);
    }
    return c;
  }

  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    if (this.closed) return Promise.reject(new HyperfleetError("VMM_EXITED", "QMP connection closed (the VMM exited)"));
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ resolve: resolve as (v: unknown) => void, reject });
      this.sock.write(JSON.stringify(args ? { execute: command, arguments: args } : { execute: command }) + "\n");
    });
  }

  close(): void {
    this.sock.destroy();
  }
}
