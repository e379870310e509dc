/**
 * The per-VM URL proxy (issue 14): HTTP/1.1 over TLS (or plain, behind another terminator) from
 * `<port>-<id>.<domain>` and `<name>.<domain>` to the guest's `network.ip:port`. Bodies stream
 * both ways (never buffered), upstream connections are kept alive, a WebSocket upgrade becomes
 * two raw sockets piped together with no idle timeout. Refusals are small pages (pages.ts).
 */
import { createServer as createHttpServer, ServerResponse, type IncomingMessage, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { Logger } from "../core/ports/logger.js";
import { checkToken, TOKEN_HEADER, withoutTokenQuery } from "./auth.js";
import { route, type ProxyDirectory, type Refusal, type Route } from "./directory.js";
import { requestHead, upstreamRequestHeaders } from "./headers.js";
import { parseHost } from "./host.js";
import { INVALID_ANSWER, pageHeaders, pageHtml, rawPage, TIMED_OUT, UNAUTHORIZED, UNREACHABLE } from "./pages.js";
import { ConnectTimeout, forward, InvalidAnswer, rawUpstream } from "./upstream.js";
import { UpstreamPool } from "./upstream-pool.js";

type Decision = { refusal: Refusal } | { redirect: string; setCookie: string } | { host: string; port: number; path: string; id: string; name: string };

export interface ProxyServerOptions {
  host: string;
  port: number;
  domain: string;
  /** PEM; null: plain HTTP. */
  tls: { cert: Buffer; key: Buffer } | null;
  maxConnections: number;
  maxHeaderBytes: number;
  directory: ProxyDirectory;
  log: Logger;
}

/** A head (request line and headers) must arrive within this; bodies and WebSockets have no limit. */
const HEADERS_TIMEOUT_MS = 30_000;

export class ProxyServer {
  private readonly server: Server;
  private readonly pool = new UpstreamPool();
  /** Upgraded pairs, ended on close (the server's own close leaves them open). */
  private readonly tunnels = new Set<Duplex>();
  private readonly proto: "http" | "https";

  private constructor(private readonly o: ProxyServerOptions) {
    this.proto = o.tls ? "https" : "http";
    const common = { maxHeaderSize: o.maxHeaderBytes, headersTimeout: HEADERS_TIMEOUT_MS, requestTimeout: 0, keepAliveTimeout: 30_000 };
    this.server = o.tls ? createHttpsServer({ ...common, cert: o.tls.cert, key: o.tls.key }) : createHttpServer(common);
    this.server.maxConnections = o.maxConnections;
    // A throw in a handler is the proxy's own bug: it costs that request, never the daemon (an
    // unhandled rejection would end the process and every machine's URLs with it).
    this.server.on("request", (req: IncomingMessage, res: ServerResponse) => void this.onRequest(req, res).catch((e: unknown) => this.failed(e, res)));
    this.server.on("upgrade", (req: IncomingMessage, sock: Duplex, head: Buffer) => void this.onUpgrade(req, sock, head).catch((e: unknown) => this.failed(e, sock)));
    this.server.on("clientError", (e: NodeJS.ErrnoException, sock: Duplex) => {
      if (!sock.writable) return void sock.destroy();
      const status = e.code === "HPE_HEADER_OVERFLOW" ? "431 Request Header Fields Too Large" : "400 Bad Request";
      sock.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
    });
  }

  static async listen(o: ProxyServerOptions): Promise<ProxyServer> {
    const p = new ProxyServer(o);
    await new Promise<void>((resolve, reject) => {
      p.server.once("error", reject);
      p.server.listen(o.port, o.host, () => {
        p.server.off("error", reject);
        resolve();
      });
    });
    return p;
  }

  /** The bound port (the configured one, or the kernel's pick for port 0). */
  get port(): number {
    const a = this.server.address();
    return typeof a === "object" && a !== null ? a.port : this.o.port;
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((r) => this.server.close(() => r()));
    this.server.closeAllConnections();
    for (const t of this.tunnels) t.destroy();
    this.pool.destroy();
    await closed;
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const d = this.decide(req, false);
    const r = d instanceof Promise ? await d : d;
    if ("refusal" in r) return this.refuse(res, r.refusal);
    if ("redirect" in r) {
      res.writeHead(302, { location: r.redirect, "set-cookie": r.setCookie, "cache-control": "no-store", "content-length": "0" });
      res.end();
      return;
    }
    const body = bodyOf(req);
    const headers = upstreamRequestHeaders(req.rawHeaders, this.forwarding(req, false));
    if (body === "chunked") headers.push("Transfer-Encoding", "chunked");
    const upstream = { key: `${r.id} ${r.host}:${r.port}`, host: r.host, port: r.port, method: req.method ?? "GET", path: r.path, headers, body, maxHeaderBytes: this.o.maxHeaderBytes };
    forward(this.pool, upstream, req, res, (e, headSent) => {
      if (headSent) return this.brokeOff(res, r, e);
      const who = `${r.name} (${r.id})`;
      if (e instanceof ConnectTimeout) return this.refuse(res, TIMED_OUT(who, r.port, e.ms));
      if (e instanceof InvalidAnswer) return this.refuse(res, INVALID_ANSWER(who, r.port, e.message));
      this.refuse(res, UNREACHABLE(who, r.port, (e as NodeJS.ErrnoException).code ?? e.message));
    });
  }

  private async onUpgrade(req: IncomingMessage, sock: Duplex, head: Buffer): Promise<void> {
    sock.on("error", () => sock.destroy());
    const d = this.decide(req, true);
    const r = d instanceof Promise ? await d : d;
    if ("refusal" in r) return void sock.end(rawPage(r.refusal));
    if ("redirect" in r) return void sock.end(rawPage(UNAUTHORIZED("a WebSocket cannot follow a redirect")));
    const who = `${r.name} (${r.id})`;
    let up: Socket;
    try {
      up = await rawUpstream(r.host, r.port);
    } catch (e) {
      return void sock.end(rawPage(e instanceof ConnectTimeout ? TIMED_OUT(who, r.port, e.ms) : UNREACHABLE(who, r.port, (e as NodeJS.ErrnoException).code ?? String(e))));
    }
    if (sock.destroyed) return void up.destroy();
    const headers = upstreamRequestHeaders(req.rawHeaders, this.forwarding(req, true));
    up.write(requestHead(req.method ?? "GET", r.path, headers));
    if (head.length > 0) up.write(head);
    // Long-lived: no idle timeout on either side; TCP keepalive notices a vanished peer.
    const client = sock as Socket;
    client.setTimeout?.(0);
    client.setKeepAlive?.(true, 60_000);
    client.setNoDelay?.(true);
    up.setKeepAlive(true, 60_000);
    this.tunnels.add(sock).add(up);
    const end = () => {
      this.tunnels.delete(sock);
      this.tunnels.delete(up);
      sock.destroy();
      up.destroy();
    };
    up.on("error", end).on("close", end);
    sock.on("close", end);
    sock.pipe(up);
    up.pipe(sock);
  }

  /**
   * What to do with the request; a value, not a promise, when the directory answers from what it
   * keeps (the usual case), so the upstream connect starts without a turn of the microtask queue.
   */
  private decide(req: IncomingMessage, upgrade: boolean): Decision | Promise<Decision> {
    const hostHeader = req.headers.host ?? "";
    try {
      const rt = route(parseHost(hostHeader, this.o.domain), this.o.directory, hostHeader);
      return rt instanceof Promise ? rt.then((x) => this.admit(req, x, upgrade)).catch((e: unknown) => this.internal(e)) : this.admit(req, rt, upgrade);
    } catch (e) {
      return this.internal(e);
    }
  }

  /** The route, then the token of a private service. */
  private admit(req: IncomingMessage, rt: Route, upgrade: boolean): Decision {
    if (!rt.ok) return { refusal: rt.refusal };
    let path = req.url ?? "/";
    if (rt.service.visibility === "private") {
      const a = checkToken({ header: headerOf(req, TOKEN_HEADER), cookie: req.headers.cookie, url: path, secure: this.proto === "https" }, rt.target.token, upgrade);
      if (a.ok === false) return { refusal: UNAUTHORIZED(a.reason) };
      if (a.ok === "redirect") return { redirect: a.location, setCookie: a.setCookie };
    }
    path = stripTokenQuery(path);
    return { host: rt.upstream.host, port: rt.upstream.port, path, id: rt.target.id, name: rt.target.name };
  }

  private internal(e: unknown): { refusal: Refusal } {
    this.o.log.error({ err: e }, "proxy: looking a machine up failed");
    return { refusal: { status: 502, code: "PROXY_UPSTREAM_UNREACHABLE", title: "Bad gateway", message: "the proxy could not look the machine up; retry" } };
  }

  private failed(e: unknown, to: ServerResponse | Duplex): void {
    this.o.log.error({ err: e }, "proxy: a request failed inside the proxy");
    const r: Refusal = { status: 500, code: "INTERNAL", title: "Internal error", message: "the proxy failed to pass the request on; the daemon's log has why" };
    if (!(to instanceof ServerResponse)) return void to.end(rawPage(r));
    if (to.headersSent) return void to.destroy();
    this.refuse(to, r);
  }

  /**
   * The guest's answer stopped after its head was sent on: all the client can be told is a cut
   * connection, so the operator gets the reason (unless the client left first, which is no news).
   */
  private brokeOff(res: ServerResponse, r: { id: string; port: number }, e: Error): void {
    if (!res.destroyed) this.o.log.warn({ machine: r.id, port: r.port, err: (e as NodeJS.ErrnoException).code ?? e.message }, "proxy: the guest's answer broke off");
    res.destroy();
  }

  private refuse(res: ServerResponse, r: Refusal): void {
    const body = pageHtml(r);
    res.writeHead(r.status, pageHeaders(r, body));
    res.end(body);
  }

  private forwarding(req: IncomingMessage, upgrade: boolean) {
    return { clientIp: req.socket.remoteAddress ?? "", proto: this.proto, host: req.headers.host ?? "", upgrade };
  }
}

/** How the client's body is framed (HTTP/1.1: neither header, no body; Node refuses both at once). */
function bodyOf(req: IncomingMessage): "none" | "length" | "chunked" {
  if (req.headers["transfer-encoding"] !== undefined) return "chunked";
  return req.headers["content-length"] !== undefined ? "length" : "none";
}

function headerOf(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(", ") : v;
}

/** A public service never sees the token either: whoever sent one sent it to the proxy. */
function stripTokenQuery(path: string): string {
  return path.includes("hf_token") ? withoutTokenQuery(path) : path;
}
