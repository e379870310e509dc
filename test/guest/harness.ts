/**
 * Test harness for the real guest agent binary (guest/build/hf-agent) running on the host with
 * `--unix PATH`: starts agents, opens protocol connections and speaks frames through the shared
 * codec (src/agent/codec.ts). Deliberately small and independent of src/agent/client.ts, so the
 * agent is tested against the spec rather than against our own client.
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { randomBytes } from "node:crypto";
import { decodeFields, encodeFields, encodeFrame, type FieldValue, type Fields, findHelloReply, type Frame, FrameDecoder } from "../../src/agent/codec.js";
import { DATA_CHUNK, ExecFlags, FLAG_END, MsgType, PROTOCOL_VERSION, Tag } from "../../src/agent/protocol.js";

export const GUEST_DIR = resolve(import.meta.dirname, "../../guest");
/** HF_AGENT_BIN runs the suite against another build, e.g. `make -C guest asan`'s. */
export const AGENT_BIN = process.env.HF_AGENT_BIN ? resolve(process.env.HF_AGENT_BIN) : join(GUEST_DIR, "build/hf-agent");

/** The static build, whatever HF_AGENT_BIN says: the one that can go into a VM image. */
export const STATIC_AGENT_BIN = join(GUEST_DIR, "build/hf-agent");

/** Builds the agent once per test process (make is a no-op when it is up to date). */
export function buildAgent(): void {
  execFileSync("make", ["-s", "-C", GUEST_DIR, "agent"], { stdio: "inherit" });
}

const agents = new Set<Agent>();
const tempDirs = new Set<string>();

/** A fresh temp dir removed by cleanupAll(). */
export function tempDir(prefix = "hf-agent-test-", parent = tmpdir()): string {
  const dir = mkdtempSync(join(parent, prefix));
  tempDirs.add(dir);
  return dir;
}

/** Kills (by PID) every agent still running and removes every temp dir; for `after` hooks. */
export async function cleanupAll(): Promise<void> {
  await Promise.all([...agents].map((a) => a.stop()));
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  tempDirs.clear();
}

/**
 * Runs the agent as PID 1 of fresh user, PID, mount, UTS and network namespaces. The user
 * namespace is what makes this safe on a real host: the agent's PID 1 duties (mounts, hostname,
 * lo, and on shutdown remounting everything read-only and reboot(2)) then only reach what that
 * namespace owns; remounting the host's filesystems fails with EPERM and reboot(2) just ends the
 * namespace. Returns null when the host does not allow unprivileged user namespaces.
 */
export function pid1Argv(socketPath: string): string[] | null {
  try {
    execFileSync("unshare", ["--user", "--map-root-user", "--pid", "--fork", "true"], { stdio: "ignore" });
  } catch {
    return null;
  }
  return ["unshare", "--user", "--map-root-user", "--pid", "--fork", "--mount", "--uts", "--net", "--mount-proc", "--kill-child=SIGKILL", AGENT_BIN, "--unix", socketPath];
}

export class Agent {
  stderr = "";
  /** Set for agents run as a namespace's PID 1: stop() must never SIGTERM them (that is shutdown). */
  pid1 = false;
  /** Under a wrapper (startUnder): the agent's own pid. */
  innerPid: number | undefined;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  private constructor(
    readonly proc: ChildProcess,
    readonly socketPath: string,
  ) {
    proc.stderr?.on("data", (b: Buffer) => (this.stderr += b.toString()));
    this.exited = new Promise((res) => proc.once("exit", (code, signal) => res({ code, signal })));
  }

  /** Starts `hf-agent --unix <tmp>/agent.sock` and waits until the socket accepts connections. */
  static async start(env: Record<string, string> = {}): Promise<Agent> {
    const dir = tempDir();
    const socketPath = join(dir, "agent.sock");
    return Agent.spawnWith([AGENT_BIN, "--unix", socketPath], socketPath, env);
  }

  /**
   * Starts the agent under a wrapper command (`strace ... --`) whose only child it is. stop()
   * SIGTERMs the agent itself (strace would detach from it and leave it running), and the
   * wrapper then exits with it.
   */
  static async startUnder(wrapper: string[]): Promise<Agent> {
    const socketPath = join(tempDir(), "agent.sock");
    const agent = await Agent.spawnWith([...wrapper, AGENT_BIN, "--unix", socketPath], socketPath, {});
    const children = readFileSync(`/proc/${agent.pid}/task/${agent.pid}/children`, "utf8").trim().split(/\s+/).map(Number);
    if (children.length !== 1 || !children[0]) throw new Error(`expected the agent as the wrapper's only child, found ${children}`);
    agent.innerPid = children[0];
    return agent;
  }

  /** Starts the agent as PID 1 (see pid1Argv); null when namespaces are not available. */
  static async startAsPid1(): Promise<Agent | null> {
    // Not under /tmp or /run: the agent mounts tmpfs there, which would hide the socket.
    const dir = tempDir("hf-agent-pid1-", "/var/tmp");
    const socketPath = join(dir, "agent.sock");
    const argv = pid1Argv(socketPath);
    if (!argv) return null;
    const agent = await Agent.spawnWith(argv, socketPath, {});
    agent.pid1 = true;
    return agent;
  }

  private static async spawnWith(argv: string[], socketPath: string, env: Record<string, string>): Promise<Agent> {
    const proc = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, ...env } });
    const agent = new Agent(proc, socketPath);
    agents.add(agent);
    const deadline = Date.now() + 5000;
    while (!existsSync(socketPath)) {
      if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`agent did not start: ${agent.stderr}`);
      await sleep(5);
    }
    return agent;
  }

  get pid(): number {
    return this.proc.pid!;
  }

  /** Opens a connection and completes READY + HELLO. */
  async connect(): Promise<Conn> {
    const c = await Conn.open(this.socketPath);
    await c.hello();
    return c;
  }

  async stop(): Promise<void> {
    agents.delete(this);
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    // A PID 1 agent is ended by killing unshare, whose --kill-child then SIGKILLs the namespace.
    if (this.innerPid !== undefined && processAlive(this.innerPid)) process.kill(this.innerPid, "SIGTERM");
    else process.kill(this.pid, this.pid1 ? "SIGKILL" : "SIGTERM");
    const t = setTimeout(() => {
      if (this.proc.exitCode === null && this.proc.signalCode === null) process.kill(this.pid, "SIGKILL");
    }, 3000);
    await this.exited;
    clearTimeout(t);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export interface ExecResult {
  pid: number;
  stdout: Buffer;
  stderr: Buffer;
  exitCode: number;
  signal: number;
  timedOut: boolean;
  durationUs: bigint;
  /** Types of every frame of the exec, in order. */
  types: number[];
  stdoutEnds: number;
  stderrEnds: number;
}

export interface ExecOpts {
  env?: string[];
  cwd?: string;
  user?: string;
  timeoutMs?: number;
  stdin?: Buffer | string;
  extra?: Array<[number, FieldValue]>;
}

export interface DetachedOpts {
  env?: string[];
  cwd?: string;
  user?: string;
  logPath?: string;
  extra?: Array<[number, FieldValue]>;
}

export class ProtocolError extends Error {
  constructor(
    readonly errno: number,
    message: string,
    readonly frame: Frame,
  ) {
    super(`errno ${errno}: ${message}`);
  }
}

/** Awaits p, which must fail with a ProtocolError carrying errno; returns that error. */
export async function expectErrno(p: Promise<unknown>, errno: number): Promise<ProtocolError> {
  const e = await p.then(
    () => assert.fail(`expected errno ${errno}`),
    (err: unknown) => err,
  );
  assert.ok(e instanceof ProtocolError, String(e));
  assert.equal(e.errno, errno, e.message);
  return e;
}

/** One protocol connection: frames are queued per operation id and awaited by id. */
export class Conn {
  ready: Promise<Frame> | undefined;
  readonly closed: Promise<void>;
  isClosed = false;
  private readonly decoder = new FrameDecoder();
  private readonly queues = new Map<number, Frame[]>();
  private readonly waiters = new Map<number, () => void>();
  private nextId = 1;
  /** Frames in the order they arrived (see arrivedAt). */
  private received = 0;
  private readonly arrival = new WeakMap<Frame, number>();
  /** Session mode: bytes before our HELLO reply, scanned for it (see Conn.session). */
  private preHello: Buffer | null = null;

  private constructor(
    readonly socket: Socket,
    private readonly nonce: Buffer | null = null,
  ) {
    if (nonce) this.preHello = Buffer.alloc(0);
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    this.closed = new Promise((res) => {
      socket.once("close", () => {
        this.isClosed = true;
        for (const w of this.waiters.values()) w();
        res();
      });
    });
    socket.on("error", () => undefined);
  }

  private onData(chunk: Buffer): void {
    if (this.preHello) {
      const buf = Buffer.concat([this.preHello, chunk]);
      const hit = findHelloReply(buf, this.nonce!);
      if (!hit) {
        this.preHello = buf.subarray(Math.max(0, buf.length - 4096 - 12));
        return;
      }
      this.preHello = null;
      this.deliver(hit.frame);
      chunk = buf.subarray(hit.end);
    }
    for (const f of this.decoder.push(chunk)) this.deliver(f);
  }

  private deliver(f: Frame): void {
    this.arrival.set(f, ++this.received);
    const q = this.queues.get(f.id) ?? [];
    q.push(f);
    this.queues.set(f.id, q);
    this.waiters.get(f.id)?.();
  }

  /** Connects and waits for READY (id 0), without HELLO: the simple start of a fresh channel. */
  static async open(path: string, readyTimeoutMs = 10_000): Promise<Conn> {
    const c = new Conn(await connectSocket(path));
    c.ready = c.next(0, readyTimeoutMs);
    const ready = await c.ready;
    if (ready.type !== MsgType.READY) throw new Error(`expected READY, got 0x${ready.type.toString(16)}`);
    return c;
  }

  /**
   * The virtio-serial host rule (docs/agent-protocol.md, "Reconnecting on virtio-serial"): HELLO
   * with a nonce right after connecting, skip everything up to the reply that echoes it, and if it
   * does not come, hang up, pause so the guest sees it, and try again. Resolves hello'd.
   */
  static async session(path: string, opts: { replyTimeoutMs?: number; attempts?: number; onRetry?: () => void } = {}): Promise<Conn> {
    for (let attempt = 1; ; attempt++) {
      const nonce = randomBytes(8);
      const c = new Conn(await connectSocket(path), nonce);
      c.sendFields(MsgType.HELLO, 0, 0, [[Tag.VERSION, { u32: PROTOCOL_VERSION }], [Tag.NONCE, nonce]]);
      try {
        const f = await c.next(0, opts.replyTimeoutMs ?? 5000);
        if (f.type !== MsgType.HELLO) throw new Error(`expected HELLO, got 0x${f.type.toString(16)}`);
        return c;
      } catch (e) {
        c.close();
        await c.closed;
        if (attempt >= (opts.attempts ?? 3)) throw e;
        opts.onRetry?.();
        await sleep(200);
      }
    }
  }

  allocId(): number {
    return this.nextId++;
  }

  send(type: number, flags: number, id: number, payload: Buffer = Buffer.alloc(0)): void {
    this.socket.write(encodeFrame(type, flags, id, payload));
  }

  sendFields(type: number, flags: number, id: number, fields: Array<[number, FieldValue]>): void {
    this.send(type, flags, id, encodeFields(fields));
  }

  /** Sends data honouring socket backpressure. */
  async sendData(type: number, id: number, data: Buffer, end = true): Promise<void> {
    let off = 0;
    do {
      const stop = Math.min(off + DATA_CHUNK, data.length);
      const last = stop >= data.length;
      const ok = this.socket.write(encodeFrame(type, last && end ? FLAG_END : 0, id, data.subarray(off, stop)));
      if (!ok) await new Promise((r) => this.socket.once("drain", r));
      off = stop;
    } while (off < data.length);
  }

  /** The next frame of operation `id`; rejects on timeout or when the connection closes. */
  async next(id: number, timeoutMs = 10_000): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const q = this.queues.get(id);
      if (q && q.length) return q.shift()!;
      if (this.isClosed) throw new Error(`connection closed while waiting for id ${id}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for a frame of id ${id}`);
      await new Promise<void>((res) => {
        const t = setTimeout(res, left);
        this.waiters.set(id, () => {
          clearTimeout(t);
          this.waiters.delete(id);
          res();
        });
      });
    }
  }

  /** The position of a received frame in the connection's input, counting from 1. */
  arrivedAt(f: Frame): number {
    return this.arrival.get(f) ?? 0;
  }

  /** Frames of `id` already received and not consumed. */
  pending(id: number): Frame[] {
    return this.queues.get(id) ?? [];
  }

  async hello(version = PROTOCOL_VERSION): Promise<Fields> {
    this.sendFields(MsgType.HELLO, 0, 0, [[Tag.VERSION, { u32: version }]]);
    const f = await this.next(0);
    if (f.type === MsgType.ERROR) throw asError(f);
    if (f.type !== MsgType.HELLO) throw new Error(`expected HELLO, got 0x${f.type.toString(16)}`);
    this.lastHelloAt = this.arrivedAt(f);
    return decodeFields(f.payload);
  }

  /** arrivedAt() of the latest HELLO reply: later frames belong to the new session. */
  lastHelloAt = 0;

  /** Sends a request and returns its single answer; ERROR becomes a rejected ProtocolError. */
  async request(type: number, fields: Array<[number, FieldValue]>, flags = 0): Promise<Frame> {
    const id = this.allocId();
    this.sendFields(type, flags, id, fields);
    const f = await this.next(id);
    if (f.type === MsgType.ERROR) throw asError(f);
    return f;
  }

  async exec(argv: string[], opts: ExecOpts = {}): Promise<ExecResult> {
    const id = this.allocId();
    const fields: Array<[number, FieldValue]> = argv.map((a) => [Tag.ARG, a]);
    for (const e of opts.env ?? []) fields.push([Tag.ENV, e]);
    if (opts.cwd !== undefined) fields.push([Tag.CWD, opts.cwd]);
    if (opts.user !== undefined) fields.push([Tag.USER, opts.user]);
    if (opts.timeoutMs !== undefined) fields.push([Tag.TIMEOUT_MS, { u32: opts.timeoutMs }]);
    fields.push([Tag.STDIN, { u8: opts.stdin !== undefined ? 1 : 0 }]);
    fields.push(...(opts.extra ?? []));
    this.sendFields(MsgType.EXEC, 0, id, fields);
    const first = await this.next(id);
    if (first.type === MsgType.ERROR) throw asError(first);
    if (first.type !== MsgType.EXEC_STARTED) throw new Error(`expected EXEC_STARTED, got 0x${first.type.toString(16)}`);
    const pid = decodeFields(first.payload).u32(Tag.PID)!;
    if (opts.stdin !== undefined) await this.sendData(MsgType.STDIN, id, Buffer.from(opts.stdin));
    return this.collectExec(id, pid, opts.timeoutMs ? opts.timeoutMs + 10_000 : 20_000);
  }

  /** Starts a detached exec (FLAGS DETACHED); returns its PID. Its EXEC_STARTED must carry END. */
  async execDetached(argv: string[], opts: DetachedOpts = {}): Promise<number> {
    const id = this.allocId();
    const fields: Array<[number, FieldValue]> = argv.map((a) => [Tag.ARG, a]);
    for (const e of opts.env ?? []) fields.push([Tag.ENV, e]);
    if (opts.cwd !== undefined) fields.push([Tag.CWD, opts.cwd]);
    if (opts.user !== undefined) fields.push([Tag.USER, opts.user]);
    fields.push([Tag.FLAGS, { u32: ExecFlags.DETACHED }]);
    if (opts.logPath !== undefined) fields.push([Tag.LOG_PATH, opts.logPath]);
    fields.push(...(opts.extra ?? []));
    this.sendFields(MsgType.EXEC, 0, id, fields);
    const f = await this.next(id);
    if (f.type === MsgType.ERROR) throw asError(f);
    if (f.type !== MsgType.EXEC_STARTED) throw new Error(`expected EXEC_STARTED, got 0x${f.type.toString(16)}`);
    if (!(f.flags & FLAG_END)) throw new Error("the EXEC_STARTED of a detached exec must carry END");
    return decodeFields(f.payload).u32(Tag.PID)!;
  }

  /** Reads a file over the protocol until `pattern` matches its text (a detached process's log or status). */
  async waitForFile(path: string, pattern: RegExp, timeoutMs = 10_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const text = await this.readFile(path).then(
        (r) => r.data.toString(),
        (e: unknown) => (e instanceof ProtocolError && e.errno === Errno.ENOENT ? "" : Promise.reject(e)),
      );
      if (pattern.test(text)) return text;
      if (Date.now() > deadline) throw new Error(`${path} did not match ${pattern} in ${timeoutMs} ms; it has: ${JSON.stringify(text.slice(-500))}`);
      await sleep(50);
    }
  }

  /** Collects the frames of a started exec until EXIT. */
  async collectExec(id: number, pid: number, timeoutMs = 20_000): Promise<ExecResult> {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const types: number[] = [MsgType.EXEC_STARTED];
    let stdoutEnds = 0;
    let stderrEnds = 0;
    for (;;) {
      const f = await this.next(id, timeoutMs);
      types.push(f.type);
      if (f.type === MsgType.STDOUT) {
        out.push(f.payload);
        if (f.flags & FLAG_END) stdoutEnds++;
      } else if (f.type === MsgType.STDERR) {
        err.push(f.payload);
        if (f.flags & FLAG_END) stderrEnds++;
      } else if (f.type === MsgType.EXIT) {
        const x = decodeFields(f.payload);
        return {
          pid,
          stdout: Buffer.concat(out),
          stderr: Buffer.concat(err),
          exitCode: x.i32(Tag.EXIT_CODE)!,
          signal: x.u32(Tag.SIGNAL)!,
          timedOut: x.u8(Tag.TIMED_OUT) === 1,
          durationUs: x.u64(Tag.DURATION_US)!,
          types,
          stdoutEnds,
          stderrEnds,
        };
      } else if (f.type === MsgType.ERROR) {
        throw asError(f);
      } else {
        throw new Error(`unexpected frame 0x${f.type.toString(16)} in exec`);
      }
    }
  }

  async writeFile(path: string, data: Buffer, opts: { mode?: number; flags?: number } = {}): Promise<bigint> {
    const id = this.allocId();
    const fields: Array<[number, FieldValue]> = [[Tag.PATH, path]];
    if (opts.mode !== undefined) fields.push([Tag.MODE, { u32: opts.mode }]);
    if (opts.flags !== undefined) fields.push([Tag.FLAGS, { u32: opts.flags }]);
    this.sendFields(MsgType.WRITE, 0, id, fields);
    await this.sendData(MsgType.DATA, id, data);
    const f = await this.next(id, 60_000);
    if (f.type === MsgType.ERROR) throw asError(f);
    if (f.type !== MsgType.OK) throw new Error(`expected OK, got 0x${f.type.toString(16)}`);
    return decodeFields(f.payload).u64(Tag.SIZE)!;
  }

  async readFile(path: string, opts: { offset?: number; length?: number } = {}): Promise<{ data: Buffer; frames: number }> {
    const id = this.allocId();
    const fields: Array<[number, FieldValue]> = [[Tag.PATH, path]];
    if (opts.offset !== undefined) fields.push([Tag.OFFSET, { u64: opts.offset }]);
    if (opts.length !== undefined) fields.push([Tag.LENGTH, { u64: opts.length }]);
    this.sendFields(MsgType.READ, 0, id, fields);
    const parts: Buffer[] = [];
    let frames = 0;
    for (;;) {
      const f = await this.next(id, 60_000);
      if (f.type === MsgType.ERROR) throw asError(f);
      if (f.type !== MsgType.DATA) throw new Error(`expected DATA, got 0x${f.type.toString(16)}`);
      frames++;
      parts.push(f.payload);
      if (f.flags & FLAG_END) return { data: Buffer.concat(parts), frames };
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Connects to an agent socket, waiting out the moment between its bind() and listen(). */
export async function connectSocket(path: string): Promise<Socket> {
  // The socket file appears at bind(), a moment before listen(): refused until then.
  const deadline = Date.now() + 5000;
  for (;;) {
    const socket = connect(path);
    try {
      await new Promise<void>((res, rej) => {
        socket.once("connect", res);
        socket.once("error", rej);
      });
      return socket;
    } catch (e) {
      socket.destroy();
      if ((e as NodeJS.ErrnoException).code !== "ECONNREFUSED" || Date.now() > deadline) throw e;
      await sleep(10);
    }
  }
}

export function asError(f: Frame): ProtocolError {
  const x = decodeFields(f.payload);
  return new ProtocolError(x.u32(Tag.ERRNO) ?? -1, x.str(Tag.MESSAGE) ?? "", f);
}

/** Linux errno values the tests expect. */
export const Errno = {
  ENOENT: 2,
  EBADF: 9,
  EBUSY: 16,
  EEXIST: 17,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  ENOSYS: 38,
  ENOTEMPTY: 39,
  EPROTO: 71,
  EPROTONOSUPPORT: 93,
  ENOBUFS: 105,
  ECANCELED: 125,
  EACCES: 13,
} as const;

/** True when process `pid` exists (and is not a zombie we could not see). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch {
    return false;
  }
}
