/**
 * A minimal WebSocket client (RFC 6455, client side) for the tests: handshake with accept-key
 * check, masked frames out, unmasked frames in. Written here rather than taken from `ws`, which is
 * only a transitive dependency (no types, no pinned version of ours); it also lets a test send and
 * see every frame (pings and pongs included) exactly.
 */
import { createHash, randomBytes } from "node:crypto";
import { connect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";

export const Op = { continuation: 0, text: 1, binary: 2, close: 8, ping: 9, pong: 10 } as const;
const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/** Bytes buffered before a frame is complete: the tests send far less. */
const MAX_BUFFER = 2 << 20;

export interface Frame {
  fin: boolean;
  opcode: number;
  payload: Buffer;
}

/** A handshake through a proxy: TLS verified against `ca` for `servername`, another Host, extra headers. */
export interface WsConnectOptions {
  tls?: { ca: Buffer; servername: string };
  hostHeader?: string;
  headers?: Record<string, string>;
  path?: string;
}

export class WsClient {
  private buf = Buffer.alloc(0);
  private frames: Frame[] = [];
  private waiter: (() => void) | null = null;
  private ended: Error | null = null;

  private constructor(private readonly sock: Socket) {
    sock.on("data", (d: Buffer) => this.onData(d));
    sock.on("close", () => this.fail(new Error("the connection closed")));
    sock.on("error", (e) => this.fail(e));
  }

  /** Connects and upgrades; rejects after `timeoutMs` or on a bad handshake. */
  static async connect(host: string, port: number, timeoutMs: number, opts: WsConnectOptions = {}): Promise<WsClient> {
    const key = randomBytes(16).toString("base64");
    const sock: Socket = opts.tls ? tlsConnect({ host, port, ca: opts.tls.ca, servername: opts.tls.servername }) : connect({ host, port });
    const extra = Object.entries(opts.headers ?? {})
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join("");
    const timer = setTimeout(() => sock.destroy(new Error(`WebSocket handshake with ${host}:${port} took over ${timeoutMs} ms`)), timeoutMs);
    try {
      const rest = await new Promise<Buffer>((resolve, reject) => {
        let head = Buffer.alloc(0);
        const onData = (d: Buffer) => {
          head = Buffer.concat([head, d]);
          const end = head.indexOf("\r\n\r\n");
          if (end < 0) return head.length > 8192 ? reject(new Error("handshake answer over 8 KiB")) : undefined;
          sock.off("data", onData);
          const lines = head.subarray(0, end).toString("latin1").split("\r\n");
          const accept = lines.find((l) => /^sec-websocket-accept:/i.test(l))?.split(":")[1]?.trim();
          const want = createHash("sha1").update(key + GUID).digest("base64");
          if (!/^HTTP\/1\.1 101 /.test(lines[0] ?? "")) reject(new Error(`handshake answered ${lines[0]}`));
          else if (accept !== want) reject(new Error(`Sec-WebSocket-Accept ${accept}, expected ${want}`));
          else resolve(head.subarray(end + 4));
        };
        sock.on("data", onData).once("error", reject).once("close", () => reject(new Error("closed during the handshake")));
        sock.once(opts.tls ? "secureConnect" : "connect", () =>
          sock.write(
            `GET ${opts.path ?? "/"} HTTP/1.1\r\nHost: ${opts.hostHeader ?? `${host}:${port}`}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`,
          ),
        );
      });
      sock.removeAllListeners("error").removeAllListeners("close");
      const ws = new WsClient(sock);
      if (rest.length > 0) ws.onData(rest);
      return ws;
    } catch (err) {
      sock.destroy();
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  send(opcode: number, payload: Buffer | string, fin = true): void {
    const data = typeof payload === "string" ? Buffer.from(payload) : payload;
    const mask = randomBytes(4);
    const len = data.length;
    const head = len < 126 ? Buffer.from([0, 0x80 | len]) : len < 65536 ? Buffer.from([0, 0x80 | 126, len >> 8, len & 255]) : Buffer.alloc(10);
    if (len >= 65536) {
      head[1] = 0x80 | 127;
      head.writeBigUInt64BE(BigInt(len), 2);
    }
    head[0] = (fin ? 0x80 : 0) | opcode;
    const masked = Buffer.from(data.map((b, i) => b ^ mask[i % 4]!));
    this.sock.write(Buffer.concat([head, mask, masked]));
  }

  /** The next frame from the server, or a rejection after `timeoutMs` saying what was awaited. */
  async next(timeoutMs: number, what = "a frame"): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    while (this.frames.length === 0) {
      if (this.ended) throw new Error(`waiting for ${what}: ${this.ended.message}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${what} within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => (clearTimeout(t), resolve());
      });
    }
    return this.frames.shift()!;
  }

  destroy(): void {
    this.sock.destroy();
  }

  private onData(d: Buffer): void {
    this.buf = Buffer.concat([this.buf, d]);
    if (this.buf.length > MAX_BUFFER) return this.fail(new Error(`over ${MAX_BUFFER} bytes buffered`));
    for (;;) {
      if (this.buf.length < 2) break;
      let len = this.buf[1]! & 0x7f;
      let off = 2;
      if (this.buf[1]! & 0x80) return this.fail(new Error("the server sent a masked frame"));
      if (len === 126) {
        if (this.buf.length < 4) break;
        len = this.buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) break;
        len = Number(this.buf.readBigUInt64BE(2));
        off = 10;
      }
      if (this.buf.length < off + len) break;
      this.frames.push({ fin: (this.buf[0]! & 0x80) !== 0, opcode: this.buf[0]! & 0x0f, payload: Buffer.from(this.buf.subarray(off, off + len)) });
      this.buf = this.buf.subarray(off + len);
    }
    this.wake();
  }

  private fail(err: Error): void {
    this.ended ??= err;
    this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }
}
