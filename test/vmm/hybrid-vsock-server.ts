/**
 * A stand-in for the host end of Firecracker's hybrid vsock (docs/vsock.md of Firecracker): listens
 * on a Unix socket, takes `CONNECT <port>\n` from the FIRST read only (Firecracker reads the
 * command without waiting and drops a connection whose line is incomplete or malformed; it also
 * accepts `connect` in any case, which we never send), and then does what the test's
 * behaviour says: close (nothing listens on the guest port), acknowledge `OK <n>\n` (late, split,
 * or together with payload), or bridge the stream to a backend Unix socket (a real hf-agent's
 * `--unix` socket), closing when the backend cannot be reached, as Firecracker does when the
 * guest answers with a reset.
 */
import { once } from "node:events";
import { createServer, connect, type Server, type Socket } from "node:net";

export type Behaviour =
  | { kind: "close" }
  | { kind: "ok"; delayMs?: number; split?: boolean; trailing?: Buffer; onSocket?: (s: Socket) => void }
  | { kind: "raw"; bytes: Buffer; keepOpen?: boolean }
  | { kind: "backend"; path: string; coalesceFirstChunk?: boolean };

export interface ConnectRequest {
  index: number;
  port: number;
  /** The bytes of the first read, to check the command came in one write. */
  firstRead: Buffer;
}

/** Firecracker hands out host-side ports from here upward (any u32 would do for the protocol). */
const FIRST_HOST_PORT = 1 << 30;

export class HybridVsockServer {
  readonly requests: ConnectRequest[] = [];
  /** Connections whose command was malformed or incomplete in the first read. */
  rejected = 0;
  private readonly sockets = new Set<Socket>();
  private nextHostPort = FIRST_HOST_PORT;

  private constructor(
    private readonly server: Server,
    readonly path: string,
    private readonly behaviour: (req: ConnectRequest) => Behaviour,
  ) {}

  /** `behaviour` picks, per CONNECT (index from 0), what the "guest" does. */
  static async listen(path: string, behaviour: (req: ConnectRequest) => Behaviour): Promise<HybridVsockServer> {
    const server = createServer();
    const self = new HybridVsockServer(server, path, behaviour);
    server.on("connection", (s: Socket) => self.onConnection(s));
    server.listen(path);
    await once(server, "listening");
    return self;
  }

  /** Connections still open on our side (bridges count twice: client and backend). */
  get openConnections(): number {
    return this.sockets.size;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private onConnection(s: Socket): void {
    this.track(s);
    s.once("data", (first: Buffer) => {
      s.pause();
      const m = /^CONNECT ([0-9]+)\n$/.exec(first.toString("latin1"));
      if (!m) {
        this.rejected++;
        s.destroy();
        return;
      }
      const req = { index: this.requests.length, port: Number(m[1]), firstRead: first };
      this.requests.push(req);
      void this.serve(s, this.behaviour(req));
    });
  }

  private async serve(s: Socket, b: Behaviour): Promise<void> {
    const ack = Buffer.from(`OK ${this.nextHostPort++}\n`);
    switch (b.kind) {
      case "close":
        s.end();
        return;
      case "raw":
        s.write(b.bytes);
        if (!b.keepOpen) s.end();
        return;
      case "ok": {
        if (b.delayMs) await sleep(b.delayMs);
        if (b.split) {
          // One byte per write, each flushed before the next, so the reader sees separate reads.
          for (const byte of ack) {
            if (s.destroyed) return;
            s.write(Buffer.of(byte));
            await sleep(2);
          }
        } else s.write(b.trailing ? Buffer.concat([ack, b.trailing]) : ack);
        if (b.trailing && b.split) s.write(b.trailing);
        b.onSocket?.(s);
        s.resume();
        return;
      }
      case "backend": {
        const be = this.track(connect({ path: b.path }));
        const ok = await new Promise<boolean>((r) => {
          be.once("connect", () => r(true));
          be.once("error", () => r(false));
        });
        if (!ok) {
          s.end();
          return;
        }
        if (b.coalesceFirstChunk) {
          const [first] = (await once(be, "data")) as [Buffer];
          be.pause();
          s.write(Buffer.concat([ack, first]));
        } else s.write(ack);
        s.pipe(be).pipe(s);
        be.resume();
        s.resume();
        s.once("close", () => be.destroy());
        be.once("close", () => s.destroy());
        be.on("error", () => s.destroy());
        s.on("error", () => be.destroy());
      }
    }
  }

  private track(s: Socket): Socket {
    this.sockets.add(s);
    s.once("close", () => this.sockets.delete(s));
    s.on("error", () => {});
    return s;
  }
}

/** Unref'd: a long "slow OK" delay must not keep the test process alive after the server closed. */
function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}
