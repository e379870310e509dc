/**
 * A raw TCP relay in a process of its own (no HTTP parsing, no TLS): 127.0.0.1:<any> -> host:port,
 * each connection piped both ways with Nagle off. bench:proxy measures it beside the proxy to tell
 * what any user-space hop in front of the guest costs from what the proxy's own code adds.
 */
import { spawn, type ChildProcess } from "node:child_process";

const RELAY = `
const net = require("node:net");
const [host, port] = process.argv.slice(1);
const s = net.createServer((c) => {
  const u = net.connect({ host, port: Number(port), noDelay: true });
  c.setNoDelay(true);
  c.pipe(u).on("error", () => c.destroy());
  u.pipe(c).on("error", () => u.destroy());
  c.on("error", () => u.destroy());
  u.on("error", () => c.destroy());
});
s.listen(0, "127.0.0.1", () => process.stdout.write(s.address().port + "\\n"));
`;

export interface Relay {
  port: number;
  close(): void;
}

export function startRelay(host: string, port: number): Promise<Relay> {
  const child: ChildProcess = spawn(process.execPath, ["-e", RELAY, host, String(port)], { stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`relay exited with ${code}`)));
    child.stdout!.once("data", (d: Buffer) => resolve({ port: Number(d.toString().trim()), close: () => void child.kill("SIGTERM") }));
  });
}
