/**
 * Test-side helpers for the Firecracker stand-in: spawn the executable as a driver would, speak
 * HTTP on its API socket, read its request log, and clean up (by PID, the guest dir included).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { request } from "node:http";
import { connect } from "node:net";
import { join, resolve } from "node:path";
import type { LogEntry } from "./api.js";
import { guestDirFor } from "./vm.js";

/** The executable the driver is pointed at instead of `firecracker`. */
export const STANDIN_BIN = resolve(import.meta.dirname, "firecracker");

export interface ApiAnswer {
  status: number;
  body: unknown;
  headers: Record<string, string | string[] | undefined>;
}

export function api(sock: string, method: string, path: string, body?: unknown, raw?: string): Promise<ApiAnswer> {
  const payload = raw ?? (body === undefined ? undefined : JSON.stringify(body));
  return new Promise((res, rej) => {
    const req = request({ socketPath: sock, method, path, headers: payload === undefined ? {} : { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(payload) } }, (r) => {
      const parts: Buffer[] = [];
      r.on("data", (c: Buffer) => parts.push(c));
      r.on("end", () => {
        const text = Buffer.concat(parts).toString();
        res({ status: r.statusCode ?? 0, body: text === "" ? undefined : (JSON.parse(text) as unknown), headers: r.headers });
      });
    });
    req.on("error", rej);
    req.end(payload);
  });
}

function accepts(path: string): Promise<boolean> {
  return new Promise((res) => {
    const c = connect(path, () => {
      c.destroy();
      res(true);
    });
    c.on("error", () => res(false));
  });
}

export class Standin {
  stderr = "";
  stdout = "";
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  private constructor(
    readonly proc: ChildProcess,
    readonly sock: string,
    readonly logPath: string,
  ) {
    proc.stderr!.on("data", (b: Buffer) => (this.stderr = (this.stderr + b.toString()).slice(-65536)));
    proc.stdout!.on("data", (b: Buffer) => (this.stdout = (this.stdout + b.toString()).slice(-65536)));
    this.exited = new Promise((r) => proc.once("exit", (code, signal) => r({ code, signal })));
  }

  /** Spawns `firecracker --api-sock <dir>/api.sock ...extra` and waits for the socket. */
  static async start(dir: string, extra: string[] = [], env: Record<string, string> = {}): Promise<Standin> {
    const sock = join(dir, "api.sock");
    const logPath = join(dir, "requests.jsonl");
    const proc = spawn(STANDIN_BIN, ["--api-sock", sock, ...extra], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, FC_STANDIN_LOG: logPath, ...env } });
    const s = new Standin(proc, sock, logPath);
    // The socket file appears at bind(), a moment before listen(): connect until it accepts (a
    // driver must do the same with the real Firecracker, whose API thread binds then listens).
    const deadline = Date.now() + 20_000;
    while (!(existsSync(sock) && (await accepts(sock)))) {
      if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`stand-in exited before listening: ${s.stderr}`);
      if (Date.now() > deadline) throw new Error(`stand-in did not listen within 20 s: ${s.stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    return s;
  }

  get pid(): number {
    return this.proc.pid!;
  }

  get alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  api(method: string, path: string, body?: unknown): Promise<ApiAnswer> {
    return api(this.sock, method, path, body);
  }

  requests(): LogEntry[] {
    if (!existsSync(this.logPath)) return [];
    return readFileSync(this.logPath, "utf8").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as LogEntry);
  }

  /** SIGKILLs the stand-in if still running and removes its guest dir (left behind by SIGKILL). */
  async stop(): Promise<void> {
    if (this.alive) this.proc.kill("SIGKILL");
    await this.exited;
    rmSync(guestDirFor(this.pid), { recursive: true, force: true });
  }
}
