/**
 * Host side of Firecracker's hybrid vsock: the guest's AF_VSOCK ports are reached through one Unix
 * socket (`uds_path`). The host connects, sends `CONNECT <port>\n` in a single write (Firecracker's
 * muxer reads the line without waiting, at most 32 bytes, and drops the connection if it is not all
 * there), and Firecracker
 * answers `OK <host-side port>\n` once the guest accepted; from then on the stream is the guest's.
 * If nothing listens on the guest port Firecracker just closes the connection, so EOF (or a reset)
 * before OK means "not ready yet", as does a missing or refusing socket (Firecracker not up yet).
 */
import { connect, type Socket } from "node:net";
import { HyperfleetError } from "../../core/errors.js";
import { abortError, sleep } from "../../host/async.js";

/** The guest agent's vsock port (HF_VSOCK_PORT in guest/agent/proto.h). */
export const AGENT_VSOCK_PORT = 1024;

/** Longest acknowledgement line we buffer: `OK 4294967295\n` is 14 bytes, so a peer that sends more is not Firecracker. */
export const MAX_ACK_LINE = 64;

export interface Backoff {
  initialMs: number;
  maxMs: number;
  factor: number;
}

export interface HybridVsockOptions {
  /** The whole budget, retries included. */
  timeoutMs?: number;
  signal?: AbortSignal;
  backoff?: Partial<Backoff>;
}

const DEFAULT_BACKOFF: Backoff = { initialMs: 20, maxMs: 500, factor: 2 };

/** The result of feeding bytes to the acknowledgement reader: more needed, or the line and what followed it. */
export type AckResult = { done: false } | { done: true; hostPort: number; rest: Buffer };

/**
 * Pure parser of the `OK <port>\n` line, fed chunk by chunk; keeps at most MAX_ACK_LINE bytes.
 * Throws AGENT_PROTOCOL_ERROR for anything else than the acknowledgement.
 */
export class AckReader {
  private buf = Buffer.alloc(0);

  constructor(private readonly guestPort: number) {}

  push(chunk: Buffer): AckResult {
    const nl = chunk.indexOf(0x0a);
    const lineBytes = this.buf.length + (nl < 0 ? chunk.length : nl + 1);
    if (lineBytes > MAX_ACK_LINE) throw this.protocolError(`no acknowledgement line within ${MAX_ACK_LINE} bytes`);
    if (nl < 0) {
      this.buf = Buffer.concat([this.buf, chunk]);
      return { done: false };
    }
    const line = Buffer.concat([this.buf, chunk.subarray(0, nl)]).toString("latin1");
    const m = /^OK ([0-9]{1,10})$/.exec(line);
    if (!m) throw this.protocolError(`expected "OK <port>", got ${JSON.stringify(line)}`);
    return { done: true, hostPort: Number(m[1]), rest: chunk.subarray(nl + 1) };
  }

  private protocolError(why: string): HyperfleetError {
    return new HyperfleetError("AGENT_PROTOCOL_ERROR", `hybrid vsock CONNECT ${this.guestPort}: ${why}`);
  }
}

/** Why an attempt did not get through; kept for the final timeout message. */
type Retry = { retry: string };

/**
 * Connects to guest vsock `port` through Firecracker's `udsPath`, retrying with backoff while
 * Firecracker or the guest is not ready. Resolves with the socket positioned right after the OK
 * line (bytes that came with it are put back), paused and without listeners of ours.
 */
export async function connectHybridVsock(udsPath: string, port: number, opts: HybridVsockOptions = {}): Promise<Socket> {
  if (!Number.isInteger(port) || port < 0 || port > 0xffffffff) throw new HyperfleetError("INVALID_ARGUMENT", `vsock port must be a u32, got ${port}`);
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const backoff = { ...DEFAULT_BACKOFF, ...opts.backoff };
  const what = `hybrid vsock connection to guest port ${port} via ${udsPath}`;
  const deadline = Date.now() + timeoutMs;
  let delay = backoff.initialMs;
  let last = "no attempt";
  for (let attempt = 1; ; attempt++) {
    if (opts.signal?.aborted) throw abortError(opts.signal.reason, what);
    const left = deadline - Date.now();
    if (left <= 0) break;
    const r = await attemptOnce(udsPath, port, left, opts.signal);
    if (!("retry" in r)) return r;
    last = `attempt ${attempt}: ${r.retry}`;
    if (opts.signal?.aborted) throw abortError(opts.signal.reason, what);
    const pause = Math.min(delay, deadline - Date.now());
    if (pause <= 0) break;
    await sleep(pause, opts.signal);
    delay = Math.min(delay * backoff.factor, backoff.maxMs);
  }
  throw new HyperfleetError("AGENT_TIMEOUT", `the guest never accepted a vsock connection on port ${port} within ${timeoutMs} ms (${udsPath}; last ${last})`, {
    details: { port, udsPath },
  });
}

/** Firecracker not up yet (no socket, or not listening yet / backlog full). */
const NOT_UP = new Set(["ENOENT", "ECONNREFUSED", "EAGAIN"]);
/** The guest refused or went away before OK: Firecracker closes or resets our end. */
const NOT_READY = new Set(["ECONNRESET", "EPIPE"]);

function attemptOnce(udsPath: string, port: number, budgetMs: number, signal: AbortSignal | undefined): Promise<Socket | Retry> {
  return new Promise((resolve, reject) => {
    const sock = connect({ path: udsPath });
    const reader = new AckReader(port);
    let connected = false;
    const finish = (r: Socket | Retry | Error) => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      sock.off("connect", onConnect).off("readable", onReadable).off("end", onEnd).off("error", onError);
      if (r instanceof Error) {
        sock.destroy();
        reject(r);
      } else if ("retry" in r) {
        sock.destroy();
        resolve(r);
      } else resolve(r);
    };
    const onAbort = () => finish(abortError(signal?.reason, `hybrid vsock connection to guest port ${port}`));
    // The overall deadline also bounds a slow OK: the caller's loop then reports the timeout.
    const timer = setTimeout(() => finish({ retry: connected ? "no OK before the deadline" : "connect did not finish before the deadline" }), budgetMs);
    const onConnect = () => {
      connected = true;
      sock.write(`CONNECT ${port}\n`);
    };
    const onReadable = () => {
      let chunk: Buffer | null;
      while ((chunk = sock.read() as Buffer | null) !== null) {
        let r: AckResult;
        try {
          r = reader.push(chunk);
        } catch (e) {
          return finish(e as Error);
        }
        if (r.done) {
          if (r.rest.length > 0) sock.unshift(r.rest);
          return finish(sock);
        }
      }
    };
    const onEnd = () => finish({ retry: "EOF before OK (nothing listening on the guest port yet)" });
    const onError = (e: NodeJS.ErrnoException) => {
      const code = e.code ?? "";
      if (!connected && NOT_UP.has(code)) return finish({ retry: `${code} on ${udsPath} (Firecracker not up yet)` });
      if (connected && NOT_READY.has(code)) return finish({ retry: `${code} before OK` });
      finish(new HyperfleetError("AGENT_DISCONNECTED", `hybrid vsock ${udsPath}: ${e.message}`, { cause: e }));
    };
    if (signal?.aborted) return onAbort();
    signal?.addEventListener("abort", onAbort, { once: true });
    sock.on("connect", onConnect).on("readable", onReadable).on("end", onEnd).on("error", onError);
  });
}
