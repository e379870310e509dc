/**
 * Host side of the guest agent protocol (docs/agent-protocol.md): one connection, many concurrent
 * operations, each keyed by an id. Transport-agnostic: give it any Duplex (the QEMU virtio-serial
 * socket, or a Firecracker vsock UDS after CONNECT).
 */
import type { Duplex } from "node:stream";
import { HyperfleetError } from "../core/errors.js";
import { abortError } from "../host/async.js";
import { randomBytes } from "node:crypto";
import { decodeFields, encodeFields, encodeFrame, type FieldValue, findHelloReply, type Frame, FrameDecoder } from "./codec.js";
import { DATA_CHUNK, DeleteFlags, ExecFlags, FLAG_END, MkdirFlags, MountFlags, MsgType, PROTOCOL_VERSION, ReaddirFlags, RenameFlags, ShutdownFlags, Tag, WriteFlags } from "./protocol.js";
import { decodeEntries, fileType, type DirEntry } from "./dirents.js";
import { EXEC_STREAM_WINDOW, type ExecExit, type ExecOptions, type ExecOutcome, type ExecStream, type ExecStreamOptions, type FileStat, type GuestIdentity, type MountRequest, type ReadFileOptions, type ReaddirOptions, type WriteFileOptions } from "./client-types.js";
import { Truncated, checkLimit, isLastFrame, Collector, identityFields, okOnly, toBuffer, errorFromFrame, streamError, protocolError } from "./client-frames.js";

export type { DirEntry } from "./dirents.js";
export * from "./client-types.js";

type FrameHandler = (frame: Frame) => void;

interface PendingOp {
  onFrame: FrameHandler;
  onClose: (err: HyperfleetError) => void;
}

/** Extra host-side wait beyond a guest timeout before we stop trusting the guest to answer. */
const HOST_GRACE_MS = 5_000;
/** IDENTITY is a few syscalls in the guest: an answer later than this means a stuck agent. */
const IDENTITY_TIMEOUT_MS = 5_000;

export class AgentClient {
  private readonly decoder = new FrameDecoder();
  private readonly ops = new Map<number, PendingOp>();
  private nextId = 1;
  private closedError: HyperfleetError | null = null;
  private readonly closeListeners: Array<(err: HyperfleetError) => void> = [];
  /** Until our HELLO reply arrives, input is scanned for it (docs/agent-protocol.md, reconnecting). */
  private preHello: Buffer | null = Buffer.alloc(0);
  private readonly nonce = randomBytes(8);
  private helloReply: ((f: Frame) => void) | null = null;
  agentVersion = "";
  version = 0;

  private constructor(private readonly stream: Duplex) {
    stream.on("data", (chunk: Buffer) => this.onData(chunk));
    stream.on("error", (e) => this.fail(new HyperfleetError("AGENT_DISCONNECTED", `agent connection error: ${e.message}`, { cause: e })));
    stream.on("close", () => this.fail(new HyperfleetError("AGENT_DISCONNECTED", "agent connection closed")));
  }

  /**
   * Wraps a freshly opened stream and starts a session: sends HELLO with a fresh nonce at once (the
   * guest reads it when it is up) and waits for the reply that echoes it, skipping anything a
   * previous session left in the channel. One attempt; see connectAgent() for the retry policy.
   * @example const agent = await AgentClient.connect(await handle.connectAgent(), { timeoutMs: 10_000 });
   */
  static async connect(stream: Duplex, opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<AgentClient> {
    const client = new AgentClient(stream);
    try {
      await client.withDeadline(opts.timeoutMs ?? 30_000, opts.signal, "agent handshake", () => client.handshake());
      return client;
    } catch (e) {
      client.close();
      throw e;
    }
  }

  get closed(): boolean {
    return this.closedError !== null;
  }

  onClose(listener: (err: HyperfleetError) => void): void {
    if (this.closedError) listener(this.closedError);
    else this.closeListeners.push(listener);
  }

  close(): void {
    this.stream.destroy();
    this.fail(new HyperfleetError("AGENT_DISCONNECTED", "agent connection closed by host"));
  }

  /** Round trip with an opaque payload; resolves with the round-trip time in microseconds. */
  async ping(payload: Buffer = Buffer.alloc(0)): Promise<number> {
    const t0 = process.hrtime.bigint();
    await this.request(MsgType.PING, payload, (f) => (f.type === MsgType.PONG ? true : undefined));
    return Number(process.hrtime.bigint() - t0) / 1000;
  }

  /** Runs a command to completion, collecting its output. */
  exec(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecOutcome> {
    if (argv.length === 0) throw new HyperfleetError("INVALID_ARGUMENT", "command must have at least one element", { details: { field: "command" } });
    checkLimit(opts.maxOutputBytes, "maxOutputBytes");
    const fields: Array<[number, FieldValue]> = argv.map((a) => [Tag.ARG, a]);
    for (const [k, v] of Object.entries(opts.env ?? {})) fields.push([Tag.ENV, `${k}=${v}`]);
    if (opts.cwd !== undefined) fields.push([Tag.CWD, opts.cwd]);
    if (opts.user !== undefined) fields.push([Tag.USER, opts.user]);
    if (opts.timeoutMs) fields.push([Tag.TIMEOUT_MS, { u32: Math.ceil(opts.timeoutMs) }]);
    const hasStdin = opts.stdin !== undefined;
    fields.push([Tag.STDIN, { u8: hasStdin ? 1 : 0 }]);

    const id = this.allocId();
    const started = Date.now();
    const stdout = new Collector(opts.maxOutputBytes);
    const stderr = new Collector(opts.maxOutputBytes);
    let pid = 0;
    return new Promise<ExecOutcome>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (fn: () => void) => {
        if (timer) clearTimeout(timer);
        opts.signal?.removeEventListener("abort", onAbort);
        this.ops.delete(id);
        fn();
      };
      const onAbort = () => {
        this.send(MsgType.SIGNAL, 0, id, encodeFields([[Tag.SIGNAL, { u32: 9 }]]));
      };
      this.ops.set(id, {
        onClose: (err) => done(() => reject(err)),
        onFrame: (f) => {
          switch (f.type) {
            case MsgType.EXEC_STARTED:
              pid = decodeFields(f.payload).u32(Tag.PID) ?? 0;
              if (hasStdin) void this.streamData(MsgType.STDIN, id, toBuffer(opts.stdin!)).catch(() => undefined);
              return;
            case MsgType.STDOUT:
              if (!f.payload.length) return;
              if (opts.onStdout) opts.onStdout(f.payload);
              else stdout.add(f.payload);
              return;
            case MsgType.STDERR:
              if (!f.payload.length) return;
              if (opts.onStderr) opts.onStderr(f.payload);
              else stderr.add(f.payload);
              return;
            case MsgType.EXIT: {
              const x = decodeFields(f.payload);
              const code = x.i32(Tag.EXIT_CODE) ?? -1;
              const sig = x.u32(Tag.SIGNAL) ?? 0;
              const outcome: ExecOutcome = {
                pid,
                exitCode: sig ? null : code,
                signal: sig || null,
                timedOut: (x.u8(Tag.TIMED_OUT) ?? 0) === 1,
                stdout: stdout.buffer(),
                stderr: stderr.buffer(),
                stdoutTruncated: stdout.truncated,
                stderrTruncated: stderr.truncated,
                durationMs: Number(x.u64(Tag.DURATION_US) ?? BigInt((Date.now() - started) * 1000)) / 1000,
              };
              return done(() => resolve(outcome));
            }
            case MsgType.ERROR:
              return done(() => reject(errorFromFrame(f, "exec", argv[0] ?? "")));
            default:
              return done(() => reject(protocolError(f, "exec")));
          }
        },
      });
      if (opts.timeoutMs) {
        timer = setTimeout(() => {
          done(() => reject(new HyperfleetError("AGENT_TIMEOUT", `the guest agent did not report the end of '${argv[0]}' within ${opts.timeoutMs! + HOST_GRACE_MS} ms`)));
          this.cancel(id);
        }, opts.timeoutMs + HOST_GRACE_MS);
      }
      opts.signal?.addEventListener("abort", onAbort, { once: true });
      this.send(MsgType.EXEC, 0, id, encodeFields(fields));
      // Sent after the EXEC, so the guest has the process by then.
      if (opts.signal?.aborted) onAbort();
    });
  }

  /**
   * Starts a command whose stdin, stdout and stderr are streamed (optionally on a PTY), with
   * per-exec flow control: the guest sends at most `window` bytes of output beyond what ack()
   * released, so a consumer that is slow holds up this exec only, and the host never buffers more
   * than the window for it. Resolves once the program runs (EXEC_STARTED); failures to start
   * reject as exec() does. An agent without PTY/FLOW support rejects with AGENT_UNSUPPORTED_VERSION.
   * @example const x = await agent.execStream(["sh"], { tty: { rows: 24, cols: 80 }, onStdout: (b) => { out.write(b); x.ack(b.length); }, onStderr: () => {} });
   */
  execStream(argv: readonly string[], opts: ExecStreamOptions): Promise<ExecStream> {
    if (argv.length === 0) throw new HyperfleetError("INVALID_ARGUMENT", "command must have at least one element", { details: { field: "command" } });
    const window = opts.window ?? EXEC_STREAM_WINDOW;
    const fields: Array<[number, FieldValue]> = argv.map((a) => [Tag.ARG, a]);
    for (const [k, v] of Object.entries(opts.env ?? {})) fields.push([Tag.ENV, `${k}=${v}`]);
    if (opts.cwd !== undefined) fields.push([Tag.CWD, opts.cwd]);
    if (opts.user !== undefined) fields.push([Tag.USER, opts.user]);
    if (opts.timeoutMs) fields.push([Tag.TIMEOUT_MS, { u32: Math.ceil(opts.timeoutMs) }]);
    fields.push([Tag.STDIN, { u8: opts.stdin === false ? 0 : 1 }]);
    fields.push([Tag.FLAGS, { u32: ExecFlags.FLOW | (opts.tty ? ExecFlags.PTY : 0) }], [Tag.WINDOW, { u32: window }]);
    if (opts.tty) fields.push([Tag.ROWS, { u32: opts.tty.rows }], [Tag.COLS, { u32: opts.tty.cols }]);
    if (this.closedError) return Promise.reject(this.closedError);
    const id = this.allocId();
    const started = Date.now();
    let running = true;
    let stdinEnded = false;
    let resolveDone!: (x: ExecExit) => void;
    let rejectDone!: (e: HyperfleetError) => void;
    const done = new Promise<ExecExit>((res, rej) => {
      resolveDone = res;
      rejectDone = rej;
    });
    // Nobody may be waiting for `done` yet when it fails before the start.
    done.catch(() => undefined);
    const control = (type: number, payload: Buffer) => {
      if (running && !this.closedError) this.send(type, 0, id, payload);
    };
    return new Promise<ExecStream>((resolve, reject) => {
      const end = (fn: () => void) => {
        running = false;
        this.ops.delete(id);
        fn();
      };
      this.ops.set(id, {
        onClose: (err) => end(() => (reject(err), rejectDone(err))),
        onFrame: (f) => {
          switch (f.type) {
            case MsgType.EXEC_STARTED: {
              const pid = decodeFields(f.payload).u32(Tag.PID) ?? 0;
              return resolve({
                pid,
                done,
                write: async (data) => {
                  if (!running || stdinEnded) return;
                  for (let off = 0; off < data.length && running; off += DATA_CHUNK) await this.sendData(MsgType.STDIN, 0, id, data.subarray(off, off + DATA_CHUNK));
                },
                // Callers await write() before end(): END must not overtake stdin still being sent.
                end: () => {
                  if (stdinEnded) return;
                  stdinEnded = true;
                  if (running && !this.closedError) this.send(MsgType.STDIN, FLAG_END, id, Buffer.alloc(0));
                },
                signal: (sig) => control(MsgType.SIGNAL, encodeFields([[Tag.SIGNAL, { u32: sig }]])),
                resize: (rows, cols) => control(MsgType.RESIZE, encodeFields([[Tag.ROWS, { u32: rows }], [Tag.COLS, { u32: cols }]])),
                ack: (bytes) => {
                  if (bytes > 0) control(MsgType.CREDIT, encodeFields([[Tag.SIZE, { u64: bytes }]]));
                },
                kill: () => control(MsgType.CANCEL, Buffer.alloc(0)),
              });
            }
            case MsgType.STDOUT:
              if (f.payload.length) opts.onStdout(f.payload);
              return;
            case MsgType.STDERR:
              if (f.payload.length) opts.onStderr(f.payload);
              return;
            case MsgType.EXIT: {
              const x = decodeFields(f.payload);
              const sig = x.u32(Tag.SIGNAL) ?? 0;
              const exit: ExecExit = {
                exitCode: sig ? null : (x.i32(Tag.EXIT_CODE) ?? -1),
                signal: sig || null,
                timedOut: (x.u8(Tag.TIMED_OUT) ?? 0) === 1,
                durationMs: Number(x.u64(Tag.DURATION_US) ?? BigInt((Date.now() - started) * 1000)) / 1000,
              };
              return end(() => resolveDone(exit));
            }
            case MsgType.ERROR: {
              const e = streamError(f, argv[0] ?? "");
              return end(() => (reject(e), rejectDone(e)));
            }
            default: {
              const e = protocolError(f, "exec");
              return end(() => (reject(e), rejectDone(e)));
            }
          }
        },
      });
      this.send(MsgType.EXEC, 0, id, encodeFields(fields));
    });
  }

  /**
   * Starts a detached process, the machine's main process: it keeps running when this connection
   * closes, its stdin is /dev/null and its stdout and stderr are appended to `logPath` in the guest
   * (default DEFAULT_LOG_PATH, rotated into `<logPath>.1` at 32 MiB). Resolves once it runs; its
   * state is then in `<logPath>.status` (`running <pid> <start_ms>`, later
   * `exited <code> <signal> <end_ms>`), read with readFile. While another process still uses the
   * same log the guest refuses with EBUSY (details.errno 16). docs/agent-protocol.md, "detached exec".
   * @example const { pid } = await agent.execDetached(["nginx", "-g", "daemon off;"], { env: { PORT: "80" } });
   */
  async execDetached(argv: readonly string[], opts: { env?: Record<string, string>; cwd?: string; user?: string; logPath?: string } = {}): Promise<{ pid: number }> {
    if (argv.length === 0) throw new HyperfleetError("INVALID_ARGUMENT", "command must have at least one element", { details: { field: "command" } });
    const fields: Array<[number, FieldValue]> = argv.map((a) => [Tag.ARG, a]);
    for (const [k, v] of Object.entries(opts.env ?? {})) fields.push([Tag.ENV, `${k}=${v}`]);
    if (opts.cwd !== undefined) fields.push([Tag.CWD, opts.cwd]);
    if (opts.user !== undefined) fields.push([Tag.USER, opts.user]);
    fields.push([Tag.FLAGS, { u32: ExecFlags.DETACHED }]);
    if (opts.logPath !== undefined) fields.push([Tag.LOG_PATH, opts.logPath]);
    const id = this.allocId();
    const result = this.awaitOp(id, "exec", argv[0] ?? "", (f) => {
      if (f.type !== MsgType.EXEC_STARTED) return undefined;
      if (!(f.flags & FLAG_END)) {
        // A guest agent older than DETACHED ran an ordinary exec, which would die with this connection.
        this.send(MsgType.SIGNAL, 0, id, encodeFields([[Tag.SIGNAL, { u32: 9 }]]));
        throw new HyperfleetError("AGENT_UNSUPPORTED_VERSION", "the guest agent does not support detached execs (rebuild the guest image); the process was killed");
      }
      return { pid: decodeFields(f.payload).u32(Tag.PID) ?? 0 };
    });
    this.send(MsgType.EXEC, 0, id, encodeFields(fields));
    return result;
  }

  /** Writes a file atomically (temp file + rename in the guest). */
  async writeFile(path: string, data: Buffer | AsyncIterable<Buffer>, opts: WriteFileOptions = {}): Promise<number> {
    const { signal } = opts;
    if (signal?.aborted) throw abortError(signal.reason, `write ${path}`);
    const fields: Array<[number, FieldValue]> = [[Tag.PATH, path]];
    if (opts.mode !== undefined) fields.push([Tag.MODE, { u32: opts.mode }]);
    const flags = (opts.mkdirs ? WriteFlags.MKDIRS : 0) | (opts.append ? WriteFlags.APPEND : 0) | (opts.fsync ? WriteFlags.FSYNC : 0);
    if (flags) fields.push([Tag.FLAGS, { u32: flags }]);
    const id = this.allocId();
    // Ends the WRITE early: the caller's signal, or a data source that failed (the guest must not
    // wait for the rest forever, nor keep its temp file).
    const stop = new AbortController();
    const onAbort = () => stop.abort(abortError(signal!.reason, `write ${path}`));
    signal?.addEventListener("abort", onAbort, { once: true });
    const result = this.awaitOp(id, "write", path, (f) => (f.type === MsgType.OK ? Number(decodeFields(f.payload).u64(Tag.SIZE) ?? 0n) : undefined), stop.signal);
    this.send(MsgType.WRITE, 0, id, encodeFields(fields));
    // Stop streaming as soon as the operation is over (an early ERROR, or cancelled).
    let answered = false;
    result.then(() => (answered = true), () => (answered = true));
    const stream = async () => {
      if (Buffer.isBuffer(data)) return this.streamData(MsgType.DATA, id, data, () => answered);
      for await (const chunk of data) {
        if (answered) return;
        for (let off = 0; off < chunk.length && !answered; off += DATA_CHUNK) await this.sendData(MsgType.DATA, 0, id, chunk.subarray(off, off + DATA_CHUNK));
      }
      if (!answered) await this.sendData(MsgType.DATA, FLAG_END, id, Buffer.alloc(0));
    };
    void stream().catch((e: unknown) => {
      // A closed connection already rejected the operation; anything else is the data source.
      if (!answered && !this.closed) stop.abort(e instanceof HyperfleetError ? e : new HyperfleetError("FILE_OPERATION_FAILED", `write ${path}: reading the data to upload failed: ${(e as Error).message}`, { cause: e }));
    });
    try {
      return await result;
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /**
   * Reads a file (from `offset`, at most `length` bytes). With `maxBytes`, a larger file is refused
   * with FILE_TOO_LARGE; with `signal`, the READ is cancelled in the guest on abort.
   */
  async readFile(path: string, opts: ReadFileOptions = {}): Promise<Buffer> {
    const { maxBytes, signal } = opts;
    if (signal?.aborted) throw abortError(signal.reason, `read ${path}`);
    checkLimit(maxBytes, "maxBytes");
    // One byte beyond the limit is enough to tell "too large" from "exactly the limit".
    const length = maxBytes === undefined ? opts.length : Math.min(opts.length ?? Infinity, maxBytes + 1);
    const fields: Array<[number, FieldValue]> = [[Tag.PATH, path]];
    if (opts.offset) fields.push([Tag.OFFSET, { u64: opts.offset }]);
    if (length !== undefined) fields.push([Tag.LENGTH, { u64: length }]);
    const parts: Buffer[] = [];
    let received = 0;
    const id = this.allocId();
    const result = this.awaitOp(id, "read", path, (f) => {
      if (f.type !== MsgType.DATA) return undefined;
      received += f.payload.length;
      if (maxBytes !== undefined && received > maxBytes) {
        throw new HyperfleetError("FILE_TOO_LARGE", `${path} is larger than ${maxBytes} bytes; read it in parts with offset and length`, { details: { limit: maxBytes } });
      }
      if (f.payload.length) {
        if (opts.onChunk) opts.onChunk(f.payload);
        else parts.push(f.payload);
      }
      return f.flags & FLAG_END ? Buffer.concat(parts) : null;
    }, signal);
    this.send(MsgType.READ, 0, id, encodeFields(fields));
    return result;
  }

  async stat(path: string): Promise<FileStat> {
    return this.request(MsgType.STAT, encodeFields([[Tag.PATH, path]]), (f) => {
      if (f.type !== MsgType.STAT_RESULT) return undefined;
      const x = decodeFields(f.payload);
      const mode = x.u32(Tag.MODE) ?? 0;
      return {
        size: Number(x.u64(Tag.SIZE) ?? 0n),
        mode,
        uid: x.u32(Tag.UID) ?? 0,
        gid: x.u32(Tag.GID) ?? 0,
        mtime: new Date(Number((x.i64(Tag.MTIME_NS) ?? 0n) / 1_000_000n)),
        type: fileType(mode),
      };
    }, "stat", path);
  }

  async remove(path: string, opts: { recursive?: boolean } = {}): Promise<void> {
    const fields: Array<[number, FieldValue]> = [[Tag.PATH, path]];
    if (opts.recursive) fields.push([Tag.FLAGS, { u32: DeleteFlags.RECURSIVE }]);
    await this.request(MsgType.DELETE, encodeFields(fields), okOnly, "delete", path);
  }

  async mkdir(path: string, opts: { parents?: boolean; mode?: number } = {}): Promise<void> {
    const fields: Array<[number, FieldValue]> = [[Tag.PATH, path]];
    if (opts.mode !== undefined) fields.push([Tag.MODE, { u32: opts.mode }]);
    if (opts.parents) fields.push([Tag.FLAGS, { u32: MkdirFlags.PARENTS }]);
    await this.request(MsgType.MKDIR, encodeFields(fields), okOnly, "mkdir", path);
  }

  /** Renames `from` to `to` in the guest (rename(2) rules); `noReplace`: an existing `to` is FILE_ALREADY_EXISTS. */
  async rename(from: string, to: string, opts: { noReplace?: boolean } = {}): Promise<void> {
    const fields: Array<[number, FieldValue]> = [[Tag.PATH, from], [Tag.NEW_PATH, to]];
    if (opts.noReplace) fields.push([Tag.FLAGS, { u32: RenameFlags.NOREPLACE }]);
    await this.request(MsgType.RENAME, encodeFields(fields), okOnly, "rename", from);
  }

  /** Creates the symlink `path` pointing to `target` (stored as given, not resolved); an existing `path` is FILE_ALREADY_EXISTS. */
  async symlink(target: string, path: string): Promise<void> {
    await this.request(MsgType.SYMLINK, encodeFields([[Tag.PATH, path], [Tag.TARGET, target]]), okOnly, "symlink", path);
  }

  /**
   * Mounts a filesystem at `target` (created first, with its parents): the disk with virtio serial
   * `serial`, or `source` as mount(2) takes it. Read-only with `readOnly`. An old agent answers ENOSYS.
   * @example await agent.mount({ serial: "hfvol0", target: "/data", fstype: "ext4" });
   */
  async mount(m: MountRequest): Promise<void> {
    const fields: Array<[number, FieldValue]> = [[Tag.PATH, m.target], [Tag.FSTYPE, m.fstype]];
    if (m.serial !== undefined) fields.push([Tag.SERIAL, m.serial]);
    if (m.source !== undefined) fields.push([Tag.SOURCE, m.source]);
    if (m.readOnly) fields.push([Tag.FLAGS, { u32: MountFlags.RDONLY }]);
    if (m.user !== undefined) fields.push([Tag.USER, m.user]);
    await this.request(MsgType.MOUNT, encodeFields(fields), okOnly, "mount", m.target);
  }

  /**
   * The entries of a directory (not `.` and `..`), each lstat'ed: a symlink is reported as one,
   * with its target. The guest streams them in frames of at most 64 KiB; at most `maxEntries` are
   * kept (then the READDIR is cancelled and `truncated` is true).
   * @example const { entries } = await agent.readdir("/etc");
   */
  async readdir(path: string, opts: ReaddirOptions = {}): Promise<{ entries: DirEntry[]; truncated: boolean }> {
    const { signal, maxEntries = Infinity } = opts;
    checkLimit(maxEntries === Infinity ? undefined : maxEntries, "maxEntries");
    if (signal?.aborted) throw abortError(signal.reason, `readdir ${path}`);
    const fields: Array<[number, FieldValue]> = [[Tag.PATH, path]];
    if (opts.nofollow) fields.push([Tag.FLAGS, { u32: ReaddirFlags.NOFOLLOW }]);
    const entries: DirEntry[] = [];
    const id = this.allocId();
    const result = this.awaitOp(id, "readdir", path, (f) => {
      if (f.type !== MsgType.DIRENTS) return undefined;
      for (const e of decodeEntries(f.payload)) {
        if (entries.length >= maxEntries) throw new Truncated();
        entries.push(e);
      }
      return f.flags & FLAG_END ? { entries, truncated: false } : null;
    }, signal);
    this.send(MsgType.READDIR, 0, id, encodeFields(fields));
    try {
      return await result;
    } catch (e) {
      if (e instanceof Truncated) return { entries, truncated: true };
      throw e;
    }
  }

  /** Asks the guest to power off (or reboot). Resolves once the guest acknowledged. */
  async shutdown(opts: { reboot?: boolean } = {}): Promise<void> {
    const payload = opts.reboot ? encodeFields([[Tag.FLAGS, { u32: ShutdownFlags.REBOOT }]]) : Buffer.alloc(0);
    await this.request(MsgType.SHUTDOWN, payload, okOnly, "shutdown", "");
  }

  /**
   * Gives the guest its own identity: entropy for its kernel's pool (CRNG reseeded at once), then
   * its clock, then its hostname (/etc/hostname and /etc/hosts too). For clones of a memory
   * snapshot, which share their source's RNG state, clock and hostname, and for a resumed guest
   * whose clock stood still. Bad values are INVALID_ARGUMENT before anything is sent; a guest part
   * that fails rejects (the parts before it stay applied); an agent that does not answer within
   * `timeoutMs` (default 5 s) rejects with AGENT_TIMEOUT. docs/agent-protocol.md, "identity".
   * @example await agent.setIdentity({ timeNs: BigInt(Date.now()) * 1_000_000n, entropy: randomBytes(64), hostname: "clone-1" });
   */
  async setIdentity(identity: GuestIdentity, opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<void> {
    const payload = encodeFields(identityFields(identity));
    await this.okWithin(MsgType.IDENTITY, payload, "identity", "IDENTITY", opts.timeoutMs ?? IDENTITY_TIMEOUT_MS, opts.signal);
  }

  /**
   * Replaces the guest's /run/secrets (its own tmpfs, mounted on first use) with one file per
   * entry, mode 0400 and owned by `user` (as EXEC's USER; default root), the directory 0500; files
   * of names not given are removed. Values travel only in this frame, never on a command line.
   * docs/agent-protocol.md, "secrets".
   */
  async setSecrets(secrets: Readonly<Record<string, string>>, opts: { user?: string; timeoutMs?: number } = {}): Promise<void> {
    const fields: Array<[number, FieldValue]> = Object.entries(secrets).map(([k, v]) => [Tag.ENV, `${k}=${v}`]);
    if (opts.user !== undefined) fields.push([Tag.USER, opts.user]);
    await this.okWithin(MsgType.SECRETS, encodeFields(fields), "secrets", "SECRETS", opts.timeoutMs ?? IDENTITY_TIMEOUT_MS);
  }

  // --- internals ---

  private async handshake(): Promise<void> {
    const reply = new Promise<Frame>((resolve) => (this.helloReply = resolve));
    const closed = new Promise<never>((_, reject) => this.onClose(reject));
    this.send(MsgType.HELLO, 0, 0, encodeFields([[Tag.VERSION, { u32: PROTOCOL_VERSION }], [Tag.NONCE, this.nonce]]));
    const hello = decodeFields((await Promise.race([reply, closed])).payload);
    this.version = hello.u32(Tag.VERSION) ?? 0;
    this.agentVersion = hello.str(Tag.AGENT_VERSION) ?? "";
    if (this.version < 1) throw new HyperfleetError("AGENT_UNSUPPORTED_VERSION", `guest agent speaks protocol ${this.version}, host needs 1..${PROTOCOL_VERSION}`);
  }

  /**
   * One request answered by OK, within `timeoutMs` (else AGENT_TIMEOUT naming `name`) and until
   * `callerSignal` aborts: for the small inline requests (IDENTITY, SECRETS) a stuck agent must not hold.
   */
  private async okWithin(type: number, payload: Buffer, op: string, name: string, timeoutMs: number, callerSignal?: AbortSignal): Promise<void> {
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(new HyperfleetError("AGENT_TIMEOUT", `the guest agent did not answer ${name} within ${timeoutMs} ms`)), timeoutMs);
    const signal = callerSignal ? AbortSignal.any([deadline.signal, callerSignal]) : deadline.signal;
    try {
      if (this.closedError) throw this.closedError;
      if (signal.aborted) throw abortError(signal.reason, op);
      const id = this.allocId();
      const result = this.awaitOp(id, op, "", okOnly, signal);
      this.send(type, 0, id, payload);
      await result;
    } finally {
      clearTimeout(timer);
    }
  }

  private request<T>(type: number, payload: Buffer, map: (f: Frame) => T | undefined | null, op = "request", subject = "", fixedId?: number): Promise<T> {
    const id = fixedId ?? this.allocId();
    const p = this.awaitOp(id, op, subject, map);
    this.send(type, 0, id, payload);
    return p;
  }

  /**
   * Registers handler for op `id`. `map` returns a value to resolve, null to keep waiting, or
   * undefined for an unexpected frame (a protocol error); a HyperfleetError it throws rejects with
   * that error and cancels the operation. ERROR frames reject with a mapped code. When `signal`
   * aborts, the operation is cancelled in the guest and the promise rejects at once.
   */
  private awaitOp<T>(id: number, op: string, subject: string, map: (f: Frame) => T | undefined | null, signal?: AbortSignal): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (this.closedError) return reject(this.closedError);
      const settle = (fn: () => void) => {
        signal?.removeEventListener("abort", onAbort);
        this.ops.delete(id);
        fn();
      };
      const onAbort = () => {
        settle(() => reject(abortError(signal!.reason, subject ? `${op} ${subject}` : op)));
        this.cancel(id);
      };
      this.ops.set(id, {
        onClose: (err) => settle(() => reject(err)),
        onFrame: (f) => {
          if (f.type === MsgType.ERROR) return settle(() => reject(errorFromFrame(f, op, subject)));
          let value: T | undefined | null;
          try {
            value = map(f);
          } catch (e) {
            if (e instanceof HyperfleetError) {
              settle(() => reject(e));
              if (!isLastFrame(f)) this.cancel(id);
              return;
            }
            return settle(() => reject(new HyperfleetError("AGENT_PROTOCOL_ERROR", `malformed ${op} reply: ${(e as Error).message}`, { cause: e })));
          }
          if (value === null) return;
          if (value === undefined) settle(() => reject(protocolError(f, op)));
          else settle(() => resolve(value));
        },
      });
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /**
   * Ends operation `id` in the guest (CANCEL) after the caller has already given up on it. Its
   * remaining frames, up to its last, are swallowed so the id is not reused while they are in
   * flight. An agent older than CANCEL answers ERROR ENOSYS, which counts as that last frame.
   */
  private cancel(id: number): void {
    if (this.closedError) return;
    this.ops.set(id, {
      onFrame: (f) => {
        if (isLastFrame(f)) this.ops.delete(id);
      },
      onClose: () => this.ops.delete(id),
    });
    this.send(MsgType.CANCEL, 0, id, Buffer.alloc(0));
  }

  private allocId(): number {
    for (;;) {
      const id = this.nextId;
      this.nextId = this.nextId >= 0xffff_fffe ? 1 : this.nextId + 1;
      if (!this.ops.has(id)) return id;
    }
  }

  private send(type: number, flags: number, id: number, payload: Buffer): boolean {
    if (this.closedError) throw this.closedError;
    return this.stream.write(encodeFrame(type, flags, id, payload));
  }

  /** Sends one data frame, honouring socket backpressure so big uploads do not balloon memory. */
  private async sendData(type: number, flags: number, id: number, chunk: Buffer): Promise<void> {
    if (!this.send(type, flags, id, chunk)) await this.drained();
  }

  private async streamData(type: number, id: number, data: Buffer, stop: () => boolean = () => false): Promise<void> {
    let off = 0;
    do {
      if (stop()) return;
      const end = Math.min(off + DATA_CHUNK, data.length);
      await this.sendData(type, end >= data.length ? FLAG_END : 0, id, data.subarray(off, end));
      off = end;
    } while (off < data.length);
  }

  private drained(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onDrain = () => {
        this.stream.off("close", onClose);
        resolve();
      };
      const onClose = () => {
        this.stream.off("drain", onDrain);
        reject(this.closedError ?? new HyperfleetError("AGENT_DISCONNECTED", "agent connection closed"));
      };
      this.stream.once("drain", onDrain);
      this.stream.once("close", onClose);
    });
  }

  private onData(chunk: Buffer): void {
    if (this.preHello) {
      const buf = this.preHello.length ? Buffer.concat([this.preHello, chunk]) : chunk;
      const hit = findHelloReply(buf, this.nonce);
      if (!hit) {
        // Keep just enough to find a reply that straddles chunks (a reply is at most 4 KiB).
        this.preHello = buf.subarray(Math.max(0, buf.length - 4096 - 12));
        return;
      }
      this.preHello = null;
      this.helloReply?.(hit.frame);
      chunk = buf.subarray(hit.end);
      if (!chunk.length) return;
    }
    let frames: Frame[];
    try {
      frames = this.decoder.push(chunk);
    } catch (e) {
      this.fail(new HyperfleetError("AGENT_PROTOCOL_ERROR", `guest agent sent a malformed frame: ${(e as Error).message}`, { cause: e }));
      this.stream.destroy();
      return;
    }
    for (const f of frames) this.ops.get(f.id)?.onFrame(f);
  }

  private fail(err: HyperfleetError): void {
    if (this.closedError) return;
    this.closedError = err;
    for (const op of [...this.ops.values()]) op.onClose(err);
    this.ops.clear();
    for (const l of this.closeListeners.splice(0)) l(err);
  }

  private async withDeadline<T>(ms: number, signal: AbortSignal | undefined, what: string, fn: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const onAbort = () => this.fail(new HyperfleetError("AGENT_DISCONNECTED", `${what} aborted`));
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      return await Promise.race([
        fn(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new HyperfleetError("AGENT_TIMEOUT", `${what} did not complete within ${ms} ms`)), ms);
        }),
      ]);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    }
  }
}
