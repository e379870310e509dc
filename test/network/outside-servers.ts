/**
 * The "outside world" servers, run inside the test's outside namespace by outside.ts (never in the
 * root namespace): a DNS server on 203.0.113.1:53/udp answering DNS_NAMES, and an HTTP server on
 * port 80 of each outside address answering httpBody(addr). Prints `ready` once all listen, then
 * one line per DNS question (`dns <name> <type>`) and per HTTP request (`http <addr> <path> <from>`).
 * Exits when its standard input closes (its parent went away) or on SIGTERM.
 */
import { createSocket } from "node:dgram";
import { createServer, type Server } from "node:http";
import { buildAnswer, parseQuery } from "./dns-wire.js";
import { DNS_NAMES, httpBody, WORLD } from "./topology.js";

const dns = createSocket("udp4");
dns.on("message", (msg, from) => {
  const q = parseQuery(msg);
  if (!q) return;
  process.stdout.write(`dns ${q.name} ${q.type}\n`);
  dns.send(buildAnswer(q, DNS_NAMES[q.name]), from.port, from.address);
});

function http(addr: string): Promise<Server> {
  const server = createServer((req, res) => {
    process.stdout.write(`http ${addr} ${req.url ?? ""} ${req.socket.remoteAddress ?? ""}\n`);
    res.writeHead(200, { "content-type": "text/plain", connection: "close" }).end(httpBody(addr));
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  return new Promise((resolve, reject) => server.once("error", reject).listen(80, addr, () => resolve(server)));
}

await new Promise<void>((resolve, reject) => dns.once("error", reject).bind(53, WORLD.outside, resolve));
const servers = await Promise.all([http(WORLD.outside), http(WORLD.denied)]);
process.stdout.write("ready\n");

const stop = () => {
  dns.close();
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
  process.exit(0);
};
process.stdin.on("end", stop).on("error", stop).resume();
process.on("SIGTERM", stop);
