/**
 * The stand-in's "guest": a real `hf-agent --unix` as PID 1 of fresh user, PID, mount, UTS and
 * network namespaces (as test/guest/harness.ts runs it), so its PID 1 duties and its power-off
 * (reboot(2) ends the namespace) behave as in a VM without touching the host.
 *
 * `setpriv --pdeathsig KILL` makes the guest die with the stand-in even on SIGKILL, as a VM dies
 * with its Firecracker process; unshare's --kill-child then takes the whole namespace down.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Writable } from "node:stream";

export interface GuestOptions {
  agentBin: string;
  /** Not under /tmp or /run: the agent mounts tmpfs there, which would hide its socket. */
  dir: string;
  /** Where the agent's stderr (its console log) goes: the serial console. */
  console: Writable;
}

export type GuestExit = { code: number | null; signal: NodeJS.Signals | null };

export class Guest {
  readonly agentSocket: string;
  readonly exited: Promise<GuestExit>;
  private paused = false;

  private constructor(
    private readonly proc: ChildProcess,
    readonly dir: string,
  ) {
    this.agentSocket = join(dir, "agent.sock");
    this.exited = new Promise((res) => proc.once("exit", (code, signal) => res({ code, signal })));
  }

  static start(opts: GuestOptions): Guest {
    rmSync(opts.dir, { recursive: true, force: true });
    mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
    const sock = join(opts.dir, "agent.sock");
    const argv = [
      "--pdeathsig",
      "KILL",
      "--",
      "unshare",
      "--user",
      "--map-root-user",
      "--pid",
      "--fork",
      "--mount",
      "--uts",
      "--net",
      "--mount-proc",
      "--kill-child=SIGKILL",
      opts.agentBin,
      "--unix",
      sock,
    ];
    const proc = spawn("setpriv", argv, { stdio: ["ignore", "ignore", "pipe"] });
    // Piped, not inherited: the console file may be one we opened, and its writes are unbounded
    // only in the file, never in our memory (pipe() applies backpressure).
    proc.stderr!.pipe(opts.console, { end: false });
    proc.on("error", () => undefined);
    return new Guest(proc, opts.dir);
  }

  /**
   * Resolves once the agent runs as the namespace's init (exec'd, not unshare's child still setting
   * up): only then is the guest there to pause, and its kill-on-parent-death armed.
   */
  async waitStarted(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const init = this.initPid();
      if (init !== undefined && comm(init) === "hf-agent") return;
      if (!this.running) throw new Error(`the guest exited while starting (${this.proc.exitCode ?? this.proc.signalCode})`);
      if (Date.now() > deadline) throw new Error(`the guest agent did not start within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** Resolves once the agent listens: as PID 1 it has mounted /tmp and /run by then. */
  async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ready) {
      if (!this.running) throw new Error("the guest exited while starting");
      if (Date.now() > deadline) throw new Error(`the guest agent did not listen within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  get isPaused(): boolean {
    return this.paused;
  }

  /** True once the agent listens (its socket exists). */
  get ready(): boolean {
    return existsSync(this.agentSocket);
  }

  /** vCPUs stopped: every process of the guest gets SIGSTOP, parents first so none forks after. */
  pause(): void {
    for (const pid of this.guestPids()) signal(pid, "SIGSTOP");
    this.paused = true;
  }

  resume(): void {
    for (const pid of this.guestPids().reverse()) signal(pid, "SIGCONT");
    this.paused = false;
  }

  /**
   * Ctrl-Alt-Del: with CAD disabled by PID 1 (the agent's reboot(RB_DISABLE_CAD)) the kernel sends
   * SIGINT to init, which the agent takes as a clean shutdown.
   */
  ctrlAltDel(): void {
    const init = this.initPid();
    if (init !== undefined) signal(init, "SIGINT");
  }

  /** Ends the guest at once (the VMM going away). */
  kill(): void {
    if (this.running && this.proc.pid !== undefined) signal(this.proc.pid, "SIGKILL");
  }

  /** PID (in our namespace) of the agent, the guest's PID 1. */
  initPid(): number | undefined {
    const pid = this.proc.pid;
    return pid === undefined ? undefined : children(pid)[0];
  }

  /** The agent and all its descendants, parents before children. */
  guestPids(): number[] {
    const init = this.initPid();
    if (init === undefined) return [];
    const out: number[] = [];
    const queue = [init];
    while (queue.length > 0 && out.length < 4096) {
      const p = queue.shift()!;
      out.push(p);
      queue.push(...children(p));
    }
    return out;
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function children(pid: number): number[] {
  try {
    const tasks = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim();
    return tasks === "" ? [] : tasks.split(/\s+/).map(Number);
  } catch {
    return [];
  }
}

function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "";
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // Gone already: nothing to stop or resume.
  }
}
