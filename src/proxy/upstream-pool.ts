/**
 * Connections to guests' services kept between requests, per machine, address and port (a new
 * machine on a reused address gets none of the old one's), most recently used first, bounded, and
 * closed after a short idle time. A connection has one set of listeners for its life, which pass
 * what arrives to the request it carries, or close it if it arrives while idle.
 */
import { connect, type Socket } from "node:net";

/**
 * An idle kept connection is closed after this. Servers close theirs too (Node's after 5 s), and
 * a request sent just as the server closes fails; staying under their timeout, as undici does with
 * the same 4 s, makes that rare, and a request without a body is then sent again once anyway.
 */
const IDLE_MS = 4000;
/** Idle connections kept per machine and port, and in all. */
const MAX_IDLE_PER_TARGET = 16;
const MAX_IDLE = 256;

/** The request a connection carries: what arrives on it is that request's. */
export interface ConnOwner {
  onData(d: Buffer): void;
  /** The guest ended its side. */
  onEnd(): void;
  onFailure(e: Error): void;
}

/** A connection to a guest's port; `exchange` is the request it carries, null while idle. */
export class Conn {
  exchange: ConnOwner | null = null;
  idle: NodeJS.Timeout | null = null;

  constructor(
    readonly sock: Socket,
    readonly key: string,
    pool: UpstreamPool,
  ) {
    // One set of listeners for the connection's life, whichever request it carries.
    sock.on("data", (d: Buffer) => (this.exchange ? this.exchange.onData(d) : sock.destroy()));
    sock.on("end", () => (this.exchange ? this.exchange.onEnd() : sock.destroy()));
    sock.on("error", (e) => this.exchange?.onFailure(e));
    sock.on("close", () => {
      pool.forget(this);
      this.exchange?.onFailure(new Error("the guest closed the connection"));
    });
  }
}

/** The kept connections, and every live one (closed with the proxy). */
export class UpstreamPool {
  private readonly idle = new Map<string, Conn[]>();
  private count = 0;
  private readonly live = new Set<Conn>();

  take(key: string): Conn | undefined {
    const list = this.idle.get(key);
    if (list === undefined) return undefined;
    let c: Conn | undefined;
    // Most recently used first; one the guest has closed (its 'close' not yet seen) is skipped.
    while ((c = list.pop()) !== undefined) {
      this.count--;
      clearTimeout(c.idle!);
      c.idle = null;
      if (!c.sock.destroyed && c.sock.writable) break;
      c.sock.destroy();
    }
    if (list.length === 0) this.idle.delete(key);
    return c;
  }

  open(host: string, port: number, key: string): Conn {
    const c = new Conn(connect({ host, port, noDelay: true }), key, this);
    this.live.add(c);
    return c;
  }

  give(c: Conn): void {
    c.exchange = null;
    const list = this.idle.get(c.key) ?? [];
    if (list.length >= MAX_IDLE_PER_TARGET || this.count >= MAX_IDLE) return void c.sock.destroy();
    list.push(c);
    this.idle.set(c.key, list);
    this.count++;
    c.idle = setTimeout(() => c.sock.destroy(), IDLE_MS).unref();
  }

  forget(c: Conn): void {
    this.live.delete(c);
    if (c.idle === null) return;
    clearTimeout(c.idle);
    c.idle = null;
    const list = this.idle.get(c.key);
    const i = list?.indexOf(c) ?? -1;
    if (i < 0) return;
    list!.splice(i, 1);
    this.count--;
    if (list!.length === 0) this.idle.delete(c.key);
  }

  destroy(): void {
    for (const c of this.live) c.sock.destroy();
  }
}
