/**
 * Requests to guests' services: HTTP/1.1 written on a plain socket and the answer read by http1.ts
 * (Node's http client cost 0.2-0.3 ms a request; see there) on a connection kept from an earlier
 * request (upstream-pool.ts) or a new one; and the raw connection the WebSocket path pipes.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { connect, type Socket } from "node:net";
import { BodyReader, readResponseHead, type ResponseHead } from "./http1.js";
import { downstreamResponseHeaders, requestHead } from "./headers.js";
import type { Conn, ConnOwner, UpstreamPool } from "./upstream-pool.js";

/** A guest that does not accept within this is answered 504. */
export const CONNECT_TIMEOUT_MS = 5000;

export class ConnectTimeout extends Error {
  constructor(readonly ms: number) {
    super(`no connection in ${ms} ms`);
  }
}

/** The guest's answer is not HTTP/1.1 the proxy can pass on (a 502 before its head, a cut after). */
export class InvalidAnswer extends Error {}

export interface UpstreamRequest {
  /** The pool's key: machine id, address and port. */
  key: string;
  host: string;
  port: number;
  method: string;
  path: string;
  /** Raw header list, framing of the body included (Content-Length, or Transfer-Encoding: chunked). */
  headers: string[];
  /** How the client's body goes on: none, as is (Content-Length), or re-framed in chunks. */
  body: "none" | "length" | "chunked";
  maxHeaderBytes: number;
}

/**
 * Sends the request on a kept connection or a new one and streams the answer into `res`.
 * `onFailure` gets what went wrong once: before the answer's head (nothing sent to the client
 * yet: a page can answer) or after (the client's answer can only be cut).
 */
export function forward(pool: UpstreamPool, u: UpstreamRequest, req: IncomingMessage, res: ServerResponse, onFailure: (e: Error, headSent: boolean) => void): void {
  // The client left while the machine was looked up: nobody to answer.
  if (res.destroyed) return;
  const kept = pool.take(u.key);
  // The connection first: what throws here leaves no listener behind.
  const conn = kept ?? pool.open(u.host, u.port, u.key);
  new Exchange(pool, u, req, res, onFailure).start(conn, kept !== undefined);
}

class Exchange implements ConnOwner {
  private conn!: Conn;
  private reused = false;
  private pending: Buffer | null = null;
  private head: ResponseHead | null = null;
  private reader: BodyReader | null = null;
  private gotBytes = false;
  private sentBody = false;
  private over = false;

  constructor(
    private readonly pool: UpstreamPool,
    private readonly u: UpstreamRequest,
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly onFailed: (e: Error, headSent: boolean) => void,
  ) {
    // The client went away: the connection is left mid-answer, so it is not kept.
    res.on("close", () => {
      if (!this.over) this.end(false);
    });
  }

  start(conn: Conn, reused: boolean): void {
    this.conn = conn;
    this.reused = reused;
    conn.exchange = this;
    const sock = conn.sock;
    boundConnect(sock, (e) => this.onFailure(e));
    sock.write(requestHead(this.u.method, this.u.path, this.u.headers));
    if (this.u.body === "none") this.sentBody = true;
    else this.sendBody();
  }

  private sendBody(): void {
    const { req } = this;
    const sock = this.conn.sock;
    const chunked = this.u.body === "chunked";
    req.on("data", (d: Buffer) => {
      if (this.over) return;
      let ok: boolean;
      if (chunked) {
        sock.cork();
        sock.write(`${d.length.toString(16)}\r\n`);
        sock.write(d);
        ok = sock.write("\r\n");
        sock.uncork();
      } else ok = sock.write(d);
      if (!ok) {
        req.pause();
        sock.once("drain", () => req.resume());
      }
    });
    req.on("end", () => {
      if (this.over) return;
      if (chunked) sock.write("0\r\n\r\n");
      this.sentBody = true;
    });
  }

  onData(d: Buffer): void {
    if (this.over) return;
    this.gotBytes = true;
    if (this.reader !== null) return this.body(d);
    this.pending = this.pending === null ? d : Buffer.concat([this.pending, d]);
    for (;;) {
      const r = readResponseHead(this.pending, this.u.method, this.u.maxHeaderBytes);
      if (r.kind === "more") return;
      if (r.kind === "invalid") return this.onFailure(new InvalidAnswer(r.reason));
      const rest = this.pending.subarray(r.used);
      // 1xx: informational, the answer proper follows (the client already had its 100 Continue from the server).
      if (r.head.status < 200) {
        this.pending = rest;
        continue;
      }
      this.pending = null;
      return this.begin(r.head, rest);
    }
  }

  private begin(head: ResponseHead, rest: Buffer): void {
    this.head = head;
    this.reader = new BodyReader(head.body);
    // Read by its chunks, any Content-Length beside them is not the client's either.
    const headers = downstreamResponseHeaders(head.rawHeaders, head.body.kind === "chunked");
    try {
      if (head.reason === "") this.res.writeHead(head.status, headers);
      else this.res.writeHead(head.status, head.reason, headers);
    } catch (e) {
      return this.onFailure(new InvalidAnswer(`a head the client could not be sent (${(e as Error).message})`));
    }
    if (rest.length > 0 || this.reader.done) this.body(rest);
  }

  private body(d: Buffer): void {
    const r = this.reader!.feed(d);
    if (r.kind === "invalid") return this.onFailure(new InvalidAnswer(r.reason));
    let full = false;
    for (const piece of r.data) full = !this.res.write(piece) || full;
    if (full && !this.conn.sock.isPaused()) {
      // The client reads slower than the guest sends: hold the guest until it catches up (unless
      // this answer is over by then and the connection carries another's).
      const sock = this.conn.sock;
      sock.pause();
      this.res.once("drain", () => {
        if (!this.over) sock.resume();
      });
    }
    if (r.done) this.finish(r.rest.length === 0);
  }

  private finish(clean: boolean): void {
    this.res.end();
    this.end(clean && this.head!.reusable && this.sentBody);
  }

  /** The guest ended its side: the end of a close-delimited body, or an answer cut short. */
  onEnd(): void {
    if (this.over) return;
    if (this.reader?.ended()) return this.finish(false);
    this.onFailure(new Error("the guest closed the connection before its answer was complete"));
  }

  onFailure(e: Error): void {
    if (this.over) return;
    // A kept connection the guest had closed meanwhile: a request without a body goes again, on a new one.
    if (this.reused && !this.gotBytes && this.u.body === "none" && !(e instanceof InvalidAnswer)) {
      this.detach(false);
      let fresh: Conn;
      try {
        fresh = this.pool.open(this.u.host, this.u.port, this.u.key);
      } catch (err) {
        this.over = true;
        return this.onFailed(err as Error, this.res.headersSent);
      }
      return this.start(fresh, false);
    }
    this.end(false);
    this.onFailed(e, this.res.headersSent);
  }

  private end(keep: boolean): void {
    this.over = true;
    this.detach(keep);
    // A body the guest did not wait for is still the client's: read it off so its connection can carry the next request.
    if (!this.sentBody) this.req.resume();
  }

  private detach(keep: boolean): void {
    const c = this.conn;
    c.exchange = null;
    if (keep) {
      c.sock.resume();
      this.pool.give(c);
    } else c.sock.destroy();
  }
}

/**
 * Arms the connect bound on a socket still connecting (a kept one needs none); its connect or its
 * close, whichever comes first, disarms it.
 */
function boundConnect(sock: Socket, fail: (e: Error) => void): void {
  if (!sock.connecting) return;
  const timer = setTimeout(() => fail(new ConnectTimeout(CONNECT_TIMEOUT_MS)), CONNECT_TIMEOUT_MS);
  sock.once("connect", () => clearTimeout(timer));
  sock.once("close", () => clearTimeout(timer));
}

/** A raw TCP connection (the WebSocket path); resolves once connected. */
export function rawUpstream(host: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port, noDelay: true });
    const fail = (e: Error) => {
      s.destroy();
      reject(e);
    };
    boundConnect(s, fail);
    s.once("error", fail);
    s.once("connect", () => {
      s.off("error", fail);
      resolve(s);
    });
  });
}
