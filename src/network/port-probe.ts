/**
 * The bind probe of exposed ports (docs/adr/0008): a DNATed port has no socket, so a host process
 * already listening there (or an address the host does not have) is found by binding it for an
 * instant. TCP with a listening net.Server, UDP with a dgram socket; closed at once.
 */
import { createSocket } from "node:dgram";
import { createServer } from "node:net";
import type { PortKey, ProbeResult } from "./exposed-ports.js";

function verdict(e: unknown): ProbeResult {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === "EADDRINUSE") return "in-use";
  if (code === "EADDRNOTAVAIL") return "not-local";
  if (code === "EACCES" || code === "EPERM") return "denied";
  throw e;
}

export function probePort(p: PortKey): Promise<ProbeResult> {
  return p.protocol === "tcp" ? probeTcp(p) : probeUdp(p);
}

function probeTcp(p: PortKey): Promise<ProbeResult> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", (e) => {
      try {
        resolve(verdict(e));
      } catch (err) {
        reject(err as Error);
      }
    });
    // exclusive: never share a handle with cluster workers; backlog 0: nothing is meant to connect.
    s.listen({ host: p.hostIp, port: p.hostPort, exclusive: true, backlog: 0 }, () => s.close(() => resolve("free")));
  });
}

function probeUdp(p: PortKey): Promise<ProbeResult> {
  return new Promise((resolve, reject) => {
    const s = createSocket({ type: "udp4", reuseAddr: false });
    s.once("error", (e) => {
      try {
        s.close();
      } catch {
        /* never bound: nothing to close */
      }
      try {
        resolve(verdict(e));
      } catch (err) {
        reject(err as Error);
      }
    });
    s.bind({ address: p.hostIp, port: p.hostPort, exclusive: true }, () => s.close(() => resolve("free")));
  });
}
