/**
 * Starts and stops the outside world's servers (outside-servers.ts) in the test's outside
 * namespace, from the inner run of a network test file. One child process, tracked by pid.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { IP, type TestNet } from "./netns.js";

const SERVERS = fileURLToPath(new URL("./outside-servers.ts", import.meta.url));
const READY_MS = 30_000;
/** Lines of server log kept (DNS questions, HTTP requests): enough for any one test file. */
const MAX_LINES = 2000;

export interface Outside {
  pid: number;
  /** `dns <name> <type>` and `http <addr> <path> <from>` lines so far (the last MAX_LINES). */
  log(): string[];
  stop(): Promise<void>;
}

export async function startOutside(net: TestNet): Promise<Outside> {
  if (!net.outside) throw new Error("this test network has no outside namespace (inTestNetns(..., { outside: true }))");
  const proc = spawn(IP, ["netns", "exec", net.names.out, process.execPath, "--import", "tsx", SERVERS], {
    stdio: ["pipe", "pipe", "pipe"],
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
  });
  const lines: string[] = [];
  let partial = "";
  let stderr = "";
  proc.stdout!.on("data", (d: Buffer) => {
    const parts = (partial + d.toString()).split("\n");
    partial = parts.pop()!.slice(-4096);
    lines.push(...parts);
    if (lines.length > MAX_LINES) lines.splice(0, lines.length - MAX_LINES);
  });
  proc.stderr!.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8192)));
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  await waitReady(proc, lines, () => stderr, exited);
  return {
    pid: proc.pid!,
    log: () => lines.filter((l) => l !== "ready"),
    async stop() {
      proc.stdin!.end();
      const timer = setTimeout(() => proc.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

async function waitReady(proc: ChildProcess, lines: string[], stderr: () => string, exited: Promise<void>): Promise<void> {
  const deadline = Date.now() + READY_MS;
  let gone = false;
  void exited.then(() => (gone = true));
  while (!lines.includes("ready")) {
    if (gone) throw new Error(`the outside servers exited before they were ready: ${stderr()}`);
    if (Date.now() > deadline) {
      proc.kill("SIGKILL");
      throw new Error(`the outside servers were not ready after ${READY_MS} ms: ${stderr()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
