/**
 * The client end of GET /machines/:id/exec/ws (docs/exec-stream.md) for `hyperfleet exec -it` and
 * `hyperfleet shell`: the local terminal in raw mode (Ctrl-C, Ctrl-D and the rest go to the guest
 * as bytes, the guest's terminal turns them into signals and EOF), its size followed through
 * SIGWINCH, stdout backpressure (the socket is not read while the local terminal lags), and the
 * guest's exit code as ours. Without a terminal, stdin is piped and ends with an `eof` message.
 */
import WebSocket from "ws";
import type { IncomingMessage } from "node:http";
import { ExecWsStream } from "../contract/exec.js";

export interface ExecSessionOptions {
  /** The API's base URL (http://host:port). */
  url: string;
  apiKey?: string;
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
export function runExecSession(o: ExecSessionOptions): Promise<number> {
  const wsUrl = `${o.url.replace(/^http/, "ws").replace(/\/$/, "")}/machines/${encodeURIComponent(o.machineId)}/exec/ws`;
  const ws = new WebSocket(wsUrl, undefined, { headers: o.apiKey ? { authorization: `Bearer ${o.apiKey}` } : {} });
  const size = () => ({ rows: o.output.rows || 24, cols: o.output.columns || 80 });
  const raw = o.tty && o.input.isTTY === true && typeof o.input.setRawMode === "function";
  const say = (msg: string) => o.errors.write(`${raw ? "\r\n" : ""}hyperfleet: ${msg}\n`);

  return new Promise<number>((resolve) => {
    let status: number | null = null;
    const onInput = (b: Buffer) => ws.send(b, { binary: true });
    const onEnd = () => ws.send(JSON.stringify({ type: "eof" }));
    const onResize = () => {
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "resize", ...size() }));
    };
    const cleanup = () => {
      o.input.off("data", onInput);
      o.input.off("end", onEnd);
      o.output.off("resize", onResize);
      if (raw) o.input.setRawMode!(false);
      o.input.pause();
    };
    const finish = (s: number) => {
      if (status !== null) return;
      status = s;
      cleanup();
      resolve(s);
    };

    ws.on("unexpected-response", (_req: unknown, res: IncomingMessage) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () => {
        let code = `HTTP ${res.statusCode}`;
        let message = body;
        try {
          const e = (JSON.parse(body) as { error: { code: string; message: string } }).error;
          code = e.code;
          message = e.message;
        } catch {
          // not our error body (a proxy's page): show it as it is
        }
        say(`${code}: ${message}`);
        finish(errorStatus(code));
      });
    });
    ws.on("error", (e: Error) => {
      say(`cannot reach ${o.url}: ${e.message}`);
      finish(1);
    });
    ws.on("open", () => {
      ws.send(
        JSON.stringify({
          command: o.command,
          stdin: o.interactive,
          ...(o.tty && { tty: size() }),
          ...(o.env !== undefined && { env: o.env }),
          ...(o.cwd !== undefined && { cwd: o.cwd }),
          ...(o.user !== undefined && { user: o.user }),
        }),
      );
      if (raw) o.input.setRawMode!(true);
      if (o.tty) o.output.on("resize", onResize);
      if (o.interactive) {
        o.input.on("data", onInput);
        o.input.on("end", onEnd);
        o.input.resume();
      }
    });
    ws.on("message", (data: Buffer, isBinary: boolean) => {
      if (isBinary) {
        const out = data[0] === ExecWsStream.STDERR ? o.errors : o.output;
        // A local terminal slower than the guest: stop reading the socket, the guest then waits.
        if (!out.write(data.subarray(1))) {
          ws.pause();
          out.once("drain", () => ws.resume());
        }
        return;
      }
      const m = JSON.parse(data.toString()) as { type: string; exit_code: number | null; signal: number | null; error?: { code: string; message: string } };
      if (m.type === "exit") finish(exitStatus(m));
      else if (m.type === "error" && m.error) {
        say(`${m.error.code}: ${m.error.message}`);
        finish(errorStatus(m.error.code));
      }
    });
    ws.on("close", () => {
      if (status === null) say("the connection closed before the command ended");
      finish(1);
    });
  });
}
