/**
 * A real OCI registry on loopback for the image tests: Debian's `docker-registry` (Distribution
 * 2.8) serving plain HTTP on 127.0.0.1:<free port> from a temp storage dir, optionally behind
 * bcrypt htpasswd auth. Stopped by its PID; its temp dir is removed.
 */
import { spawn, execFile, type ChildProcess } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A running registry. */
export interface TestRegistry {
  /** `127.0.0.1:<port>`: use it in image refs and in insecureRegistries. */
  host: string;
  port: number;
  pid: number;
  stop(): Promise<void>;
}

/** A loopback port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const addr = s.address();
      s.close(() => (typeof addr === "object" && addr ? resolve(addr.port) : reject(new Error("no port"))));
    });
  });
}

/** `user:<bcrypt hash>` from htpasswd, the password given on stdin (never on a command line). */
function htpasswdLine(username: string, password: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile("htpasswd", ["-Bin", username], (err, stdout) => (err ? reject(err) : resolve(stdout.trim())));
    child.stdin?.end(password);
  });
}

function configYaml(storage: string, port: number, htpasswd: string | null): string {
  return [
    "version: 0.1",
    "log:",
    "  level: error",
    "  accesslog:",
    "    disabled: true",
    "storage:",
    "  filesystem:",
    `    rootdirectory: ${storage}`,
    "  delete:",
    "    enabled: true",
    "http:",
    `  addr: 127.0.0.1:${port}`,
    ...(htpasswd ? ["auth:", "  htpasswd:", "    realm: hf-test", `    path: ${htpasswd}`] : []),
    "",
  ].join("\n");
}

async function waitUntilUp(port: number, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited with ${child.exitCode}`);
    try {
      const r = await fetch(`http://127.0.0.1:${port}/v2/`, { signal: AbortSignal.timeout(1000) });
      if (r.status === 200 || r.status === 401) return;
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`docker-registry did not answer on port ${port} within ${timeoutMs} ms`);
}

/** Starts a registry; with `auth`, every request needs those credentials. */
export async function startRegistry(opts: { auth?: { username: string; password: string } } = {}): Promise<TestRegistry> {
  const dir = await mkdtemp(join(tmpdir(), "hf-registry-"));
  const port = await freePort();
  let htpasswd: string | null = null;
  if (opts.auth) {
    htpasswd = join(dir, "htpasswd");
    await writeFile(htpasswd, `${await htpasswdLine(opts.auth.username, opts.auth.password)}\n`, { mode: 0o600 });
  }
  const config = join(dir, "config.yml");
  await writeFile(config, configYaml(join(dir, "storage"), port, htpasswd));
  const child = spawn("docker-registry", ["serve", config], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (b: Buffer) => (stderr = (stderr + b.toString()).slice(-4000)));
  const pid = child.pid!;
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      process.kill(pid, "SIGTERM");
      const t = setTimeout(() => child.exitCode === null && process.kill(pid, "SIGKILL"), 5000);
      await exited;
      clearTimeout(t);
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitUntilUp(port, child, 10_000);
  } catch (e) {
    await stop();
    throw new Error(`${(e as Error).message}\n${stderr}`, { cause: e });
  }
  return { host: `127.0.0.1:${port}`, port, pid, stop };
}
