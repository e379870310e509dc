/**
 * Connections to guests' services: a keep-alive agent for HTTP (sockets reused across requests),
 * and a bounded connect for both it and the raw WebSocket path.
 */
import { Agent, request, type ClientRequest, type IncomingMessage, type OutgoingHttpHeaders } from "node:http";
import { connect, type Socket } from "node:net";

/** A guest that does not accept within this is answered 504. */
export const CONNECT_TIMEOUT_MS = 5000;

export class ConnectTimeout extends Error {
  constructor(readonly ms: number) {
    super(`no connection in ${ms} ms`);
  }
}

export function upstreamAgent(): Agent {
  return new Agent({ keepAlive: true, maxSockets: 512, maxFreeSockets: 64, scheduling: "lifo" });
}

/** Arms the connect timeout on a socket still connecting; a reused keep-alive socket needs none. */
function boundConnect(sock: Socket, ms: number, fail: (e: Error) => void): void {
  if (!sock.connecting) return;
  const timer = setTimeout(() => fail(new ConnectTimeout(ms)), ms);
  sock.once("connect", () => clearTimeout(timer));
  sock.once("close", () => clearTimeout(timer));
}

export interface UpstreamRequest {
  host: string;
  port: number;
  method: string;
  path: string;
  headers: string[];
  agent: Agent;
}

/**
 * Sends the head; the caller pipes the body. The guest's answer is parsed leniently (LF-only line
 * ends, as busybox httpd's CGI headers have; nginx takes them too): a sloppy header only affects
 * that guest's own connection, while the client side keeps Node's strict parser.
 * Errors (ConnectTimeout included) go to `onError` once.
 */
export function httpUpstream(u: UpstreamRequest, onResponse: (res: IncomingMessage) => void, onError: (e: Error) => void): ClientRequest {
  let failed = false;
  const fail = (e: Error) => {
    if (failed) return;
    failed = true;
    onError(e);
    req.destroy();
  };
  const req = request({ host: u.host, port: u.port, method: u.method, path: u.path, headers: u.headers as unknown as OutgoingHttpHeaders, agent: u.agent, setHost: false, insecureHTTPParser: true }, onResponse);
  req.on("socket", (s) => boundConnect(s, CONNECT_TIMEOUT_MS, fail));
  req.on("error", fail);
  return req;
}

/** A raw TCP connection (the WebSocket path); resolves once connected. */
export function rawUpstream(host: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port, noDelay: true });
    const fail = (e: Error) => {
      s.destroy();
      reject(e);
    };
    boundConnect(s, CONNECT_TIMEOUT_MS, fail);
    s.once("error", fail);
    s.once("connect", () => {
      s.off("error", fail);
      resolve(s);
    });
  });
}
