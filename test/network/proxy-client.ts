/**
 * Requests through the per-VM URL proxy as a client would send them: TLS checked against the
 * proxy's CA for the machine's host name (no rejectUnauthorized: false), Host = that name.
 */
import { request as httpsRequest } from "node:https";
import { request as httpRequest, type IncomingHttpHeaders } from "node:http";

export interface ProxyAt {
  /** Where the proxy listens (an address: the test has no DNS for `*.<domain>`). */
  addr: string;
  port: number;
  /** PEM of the CA to trust; null: plain HTTP. */
  ca: Buffer | null;
}

export interface ProxyAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One request to `https://<hostname>:<port><path>`; bounded by `timeoutMs`, body read up to 1 MiB. */
export function viaProxy(p: ProxyAt, hostname: string, path = "/", headers: Record<string, string> = {}, timeoutMs = 15_000, method = "GET"): Promise<ProxyAnswer> {
  return new Promise((resolve, reject) => {
    const opts = { host: p.addr, port: p.port, path, method, headers: { host: `${hostname}:${p.port}`, ...headers }, agent: false as const, timeout: timeoutMs };
    const req = p.ca ? httpsRequest({ ...opts, ca: p.ca, servername: hostname }) : httpRequest(opts);
    const timer = setTimeout(() => req.destroy(new Error(`${hostname}${path}: no answer in ${timeoutMs} ms`)), timeoutMs);
    req.on("response", (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => {
        body += d;
        if (body.length > 1 << 20) req.destroy(new Error("answer over 1 MiB"));
      });
      res.on("end", () => (clearTimeout(timer), resolve({ status: res.statusCode ?? 0, headers: res.headers, body })));
      res.on("error", (e) => (clearTimeout(timer), reject(e)));
    });
    req.on("error", (e) => (clearTimeout(timer), reject(e)));
    req.end();
  });
}
