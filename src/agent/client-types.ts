/**
 * What AgentClient's calls take and give (client.ts): options and results of exec, streamed exec,
 * files and identity, kept apart from the connection logic so that file stays readable.
 */
import type { ExecStreamExit, ExecStreamHandle, FileStatView } from "../core/ports/services.js";

export interface ExecOptions {
  env?: Record<string, string>;
  cwd?: string;
  user?: string;
  /** Guest-enforced timeout; the process group is SIGKILLed when it expires. */
  timeoutMs?: number;
  stdin?: string | Buffer;
  /** Kills the process group (SIGKILL); the EXIT still comes back and resolves the call. */
  signal?: AbortSignal;
  onStdout?: (chunk: Buffer) => void;
  onStderr?: (chunk: Buffer) => void;
  /**
   * Most bytes of stdout, and separately of stderr, to collect; the rest is dropped (the process
   * runs on) and `stdoutTruncated`/`stderrTruncated` say so. Default: no limit. Not applied to
   * what onStdout/onStderr receive.
   */
  maxOutputBytes?: number;
}

export interface ExecOutcome {
  pid: number;
  exitCode: number | null;
  /** Signal number that ended the process, or null. */
  signal: number | null;
  timedOut: boolean;
  stdout: Buffer;
  stderr: Buffer;
  /** Output beyond maxOutputBytes was dropped. */
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  durationMs: number;
}

export interface ReadFileOptions {
  offset?: number;
  length?: number;
  /** Streams the data instead of collecting it (the result is then empty). */
  onChunk?: (b: Buffer) => void;
  /**
   * Refuse a file with more than this many bytes (from `offset`, within `length`) with
   * FILE_TOO_LARGE (details.limit). The guest is asked for at most maxBytes + 1 and the READ is
   * cancelled, so at most one chunk beyond the limit is ever buffered. Counts onChunk data too.
   */
  maxBytes?: number;
  /** Cancels the READ in the guest and rejects at once (see abortError). */
  signal?: AbortSignal;
}

export interface WriteFileOptions {
  mode?: number;
  mkdirs?: boolean;
  append?: boolean;
  /** The data and the rename are on disk (fsync of the file and its directory) before this resolves. */
  fsync?: boolean;
  /** Stops streaming, cancels the WRITE in the guest (its temp file is removed) and rejects at once. */
  signal?: AbortSignal;
}

/** What IDENTITY sets in the guest; every part is optional (docs/agent-protocol.md, "identity"). */
export interface GuestIdentity {
  /** Wall clock, ns since the epoch, e.g. `BigInt(Date.now()) * 1_000_000n`. */
  timeNs?: bigint;
  /** 16..512 random bytes, mixed into the guest kernel's pool (credited); its CRNG is reseeded at once. */
  entropy?: Buffer;
  /** 1..64 characters of [A-Za-z0-9-_.]; also written to /etc/hostname and /etc/hosts. */
  hostname?: string;
}


/** A MOUNT (docs/agent-protocol.md, "mount"): `serial` or `source` names what to mount. */
export interface MountRequest {
  /** Absolute, not `/`, no `..`; created with its parents. */
  target: string;
  fstype: string;
  /** The virtio-blk disk whose serial this is (at most 20 bytes). */
  serial?: string;
  /** mount(2)'s source, e.g. a device path or `tmpfs`. */
  source?: string;
  readOnly?: boolean;
  /** As EXEC's user (name, uid, uid:gid): a fresh filesystem's root (nothing but lost+found) is given to it. */
  user?: string;
}

export interface ReaddirOptions {
  /** PATH itself must not be a symlink (FILE_PATH_INVALID): a tree walk never leaves its root. */
  nofollow?: boolean;
  /** Stop after this many entries (the READDIR is cancelled) and report `truncated`. */
  maxEntries?: number;
  signal?: AbortSignal;
}

export interface ExecStreamOptions {
  env?: Record<string, string>;
  cwd?: string;
  user?: string;
  /** Guest-enforced timeout; the process group is SIGKILLed when it expires (EXIT says timedOut). */
  timeoutMs?: number;
  /** Whether the caller streams stdin (write/end); false gives the child /dev/null. Default true. */
  stdin?: boolean;
  /** A PTY of this size as the child's terminal (stdout carries everything; no stderr). */
  tty?: { rows: number; cols: number };
  /**
   * Output bytes the guest may send before the caller acknowledges them with ack() (the agent's
   * FLOW window). What the host holds per exec is bounded by it. Default 1 MiB (EXEC_STREAM_WINDOW).
   */
  window?: number;
  onStdout: (chunk: Buffer) => void;
  onStderr: (chunk: Buffer) => void;
}

/** The end of a streamed exec, and a running one (AgentClient.execStream): the service port's shapes. */
export type ExecExit = ExecStreamExit;
export type ExecStream = ExecStreamHandle;

/** Default per-exec output window of execStream: 1 MiB moved 64 MiB in 7.4 s under TCG, 256 KiB in 10.8 s. */
export const EXEC_STREAM_WINDOW = 1024 * 1024;

/** What STAT answers: the same shape the service ports hand to the API. */
export type FileStat = FileStatView;
