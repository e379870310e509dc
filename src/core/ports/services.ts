/**
 * The ports the HTTP routes call. MachineService (src/machines/) and ImageCatalog (src/images/)
 * implement them; the API never imports the store or the VMM layer, so routes can be exercised
 * with any implementation, and the machines layer never imports the API.
 * Methods throw HyperfleetError; the API maps codes to HTTP status (src/api/http-status.ts).
 */
import type { MachineStatus } from "../machine-state.js";
import type { HealthCheckInput, RestartPolicyInput, WorkloadEvent } from "../health.js";
import type { ExposedPortRequest, ImageRunConfig, MachineView, NetworkPolicy, ProxiedService } from "../machine.js";
import type { Logger } from "./logger.js";
import type { SnapshotRecord } from "../snapshot.js";
import type { VolumeRecord, VolumeRequest } from "../volume.js";

export type { MachineView, MainProcessState, ImagePullState } from "../machine.js";

/** Per-call context: the request's child logger and an abort signal (client went away). */
export interface CallContext {
  log?: Logger;
  signal?: AbortSignal;
}

/** Credentials for one pull; never stored or logged. */
export type RegistryAuthInput = { username: string; password: string } | { token: string };

export interface CreateMachineRequest {
  name: string;
  /** Required unless `snapshot` is given (a machine from a snapshot has its source's shape). */
  vcpuCount?: number;
  memSizeMib?: number;
  /** `snap_...`: start from this snapshot instead of booting (SNAPSHOT_NOT_FOUND, SNAPSHOT_INCOMPATIBLE). */
  snapshot?: string;
  env: Record<string, string>;
  /** Sealed at rest, never returned; the main process's env and /run/secrets in the guest. */
  secrets?: Record<string, string>;
  metadata: Record<string, string>;
  /** Boot right away (the call still returns before the guest is up). */
  start: boolean;
  /** OCI image reference; the pull starts at once, in the background. */
  image?: string;
  imageSizeMib?: number;
  registryAuth?: RegistryAuthInput;
  /** Docker semantics: an entrypoint override drops the image's Cmd unless `cmd` is given too. */
  cmd?: string[];
  entrypoint?: string[];
  workdir?: string;
  user?: string;
  /** false: no network; absent: HYPERFLEET_NETWORK_DEFAULT decides (with the default policy). */
  network?: Partial<NetworkPolicy> | false;
  /** Needs a network. */
  exposedPorts?: ExposedPortRequest[];
  /** Guest ports the proxy serves (issue 14); need a network. */
  services?: ProxiedService[];
  /** An `http` check needs a network (HEALTH_CHECK_NEEDS_NETWORK). */
  healthCheck?: HealthCheckInput;
  restartPolicy?: RestartPolicyInput;
  /** Volumes to hold and mount (docs/agents.md "Volumes"); claimed with the insert. */
  volumes?: VolumeRequest[];
}

export interface LogsRequest {
  /** Keep the response open and send new output as it comes. */
  follow: boolean;
  /** Only the last N lines (of what is there when the request arrives). */
  tail?: number;
}

/** A cached image as the API shows it. */
export interface ImageView {
  refs: string[];
  digest: string;
  resolvedRef: string;
  sizeBytes: number;
  diskSizeMib: number;
  inUse: boolean;
  createdAt: string;
  lastUsedAt: string;
  platform: { os: string; architecture: string; variant: string | null };
  config: ImageRunConfig;
}

/** Where a pull is (the download's layer and byte counts). */
export interface PullProgressView {
  phase: string;
  layersDone: number;
  layersTotal: number;
  bytesDone: number;
  bytesTotal: number;
}

export interface PullImageRequest {
  image: string;
  registryAuth?: RegistryAuthInput;
  imageSizeMib?: number;
  /** Called as the (possibly shared) pull moves on; a cached image reports `done` at once. */
  onProgress?: (p: PullProgressView) => void;
}

/** The image cache (GET/DELETE /images, POST /images/pull). */
export interface ImageServicePort {
  list(ctx?: CallContext): Promise<ImageView[]>;
  /** A reference, or a manifest digest (`sha256:...`). IMAGE_NOT_CACHED, IMAGE_IN_USE. */
  remove(ref: string, ctx?: CallContext): Promise<void>;
  /** Resolves when the image is cached (at once when it already is). */
  pull(req: PullImageRequest, ctx?: CallContext): Promise<ImageView>;
}

export interface ExecRequest {
  command: string[];
  env?: Record<string, string>;
  cwd?: string;
  user?: string;
  timeoutMs: number;
  stdin?: string;
  /** Bytes kept of stdout and, separately, of stderr; the rest is dropped (the command goes on). */
  maxOutputBytes: number;
  /** How stdout and stderr are turned into strings: `base64` keeps bytes that are not UTF-8. */
  encoding: ExecEncoding;
}

export type ExecEncoding = "utf8" | "base64";

/** A streamed exec (GET /machines/:id/exec/ws): its output goes to the callbacks as it comes. */
export interface ExecStreamRequest {
  command: string[];
  env?: Record<string, string>;
  cwd?: string;
  user?: string;
  /** Killed (SIGKILL to the group) after this long; absent: no limit. */
  timeoutMs?: number;
  /** false: the process reads /dev/null. */
  stdin: boolean;
  /** A PTY of this size; its output is all stdout. */
  tty?: { rows: number; cols: number };
  onStdout: (chunk: Buffer) => void;
  onStderr: (chunk: Buffer) => void;
}

export interface ExecStreamExit {
  exitCode: number | null;
  signal: number | null;
  timedOut: boolean;
  durationMs: number;
}

/**
 * A running streamed exec. Output is flow-controlled per exec: after a bounded window the guest
 * sends more only as ack() releases it, so whoever consumes the output sets the pace.
 */
export interface ExecStreamHandle {
  readonly pid: number;
  /** Resolves with the exit; rejects when the agent ends the exec with an error or goes away. */
  readonly done: Promise<ExecStreamExit>;
  /** Sends stdin; resolves when the agent connection took the bytes (backpressure). */
  write(data: Buffer): Promise<void>;
  /** Ends stdin (for a PTY: one ^D). */
  end(): void;
  signal(sig: number): void;
  /** Window size of the PTY; ignored without one. */
  resize(rows: number, cols: number): void;
  /** The caller has passed on `bytes` of output: the guest may send that many more. */
  ack(bytes: number): void;
  /** SIGKILLs the process group; `done` still resolves with the exit. */
  kill(): void;
}

/** An exec's result; EXEC_TIMEOUT carries the same output fields in its details (snake_case). */
export interface ExecOutput {
  exitCode: number | null;
  signal: number | null;
  /** In the request's encoding. */
  stdout: string;
  stderr: string;
  /** The stream had more than maxOutputBytes; only the first maxOutputBytes are in stdout/stderr. */
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  durationMs: number;
}

/** A background process to start: it outlives the request, its output goes to a log in the guest. */
export interface ProcessStartRequest {
  command: string[];
  env?: Record<string, string>;
  cwd?: string;
  user?: string;
}

/** A background process of the machine's current boot. */
export interface ProcessView {
  pid: number;
  command: string[];
  status: "running" | "exited";
  exitCode: number | null;
  signal: number | null;
  startedAt: string;
  exitedAt: string | null;
}

export interface FileStatView {
  size: number;
  mode: number;
  uid: number;
  gid: number;
  mtime: Date;
  type: "file" | "directory" | "symlink" | "other";
}

/** A directory entry, lstat'ed: a symlink is `type: "symlink"` with its `target`, never followed. */
export interface DirEntryView extends FileStatView {
  name: string;
  target?: string;
}

/** What a tar upload created; hardlinks and special files are skipped and counted. */
export interface UnpackView {
  files: number;
  directories: number;
  symlinks: number;
  bytes: number;
  skipped: number;
}

/**
 * Directory listing, mkdir, rename and streamed transfers (raw bytes and tar), for files of any
 * size up to `maxSize` with bounded daemon memory (src/machines/file-streams.ts).
 */
export interface FileTreePort {
  /** At most `limit` entries, sorted by name; `truncated` when there were more. */
  listDir(id: string, path: string, limit: number, ctx?: CallContext): Promise<{ entries: DirEntryView[]; truncated: boolean }>;
  mkdir(id: string, path: string, opts: { parents: boolean; mode?: number }, ctx?: CallContext): Promise<void>;
  /** FILE_ALREADY_EXISTS with noReplace when `to` exists. */
  rename(id: string, from: string, to: string, opts: { noReplace: boolean }, ctx?: CallContext): Promise<void>;
  /** Checked (FILE_IS_DIRECTORY, FILE_TOO_LARGE) before it resolves, so errors come before any byte. */
  openDownload(id: string, path: string, maxSize: number, ctx?: CallContext): Promise<{ size: number; body: AsyncIterable<Buffer> }>;
  /** A file or a directory tree as tar; walked (and checked) before it resolves. */
  openTarDownload(id: string, path: string, maxSize: number, ctx?: CallContext): Promise<AsyncIterable<Buffer>>;
  /** Writes `body` as it arrives (temp file + rename, fsync), FILE_TOO_LARGE past maxSize. */
  uploadStream(id: string, path: string, body: AsyncIterable<Buffer>, opts: { mode?: number; maxSize: number }, ctx?: CallContext): Promise<{ size: number }>;
  /** Unpacks a tar body into `path` (FILE_PATH_INVALID for absolute or `..` entries). */
  uploadTar(id: string, path: string, body: AsyncIterable<Buffer>, maxSize: number, ctx?: CallContext): Promise<UnpackView>;
}

export interface MachineServicePort extends FileTreePort {
  list(filter: { status?: readonly MachineStatus[] }, ctx?: CallContext): Promise<MachineView[]>;
  /** MACHINE_NOT_FOUND when there is no such machine. */
  get(id: string, ctx?: CallContext): Promise<MachineView>;
  create(req: CreateMachineRequest, ctx?: CallContext): Promise<MachineView>;
  /** Lifecycle calls return once the first status change is persisted (e.g. `starting`). */
  start(id: string, ctx?: CallContext): Promise<MachineView>;
  stop(id: string, ctx?: CallContext): Promise<MachineView>;
  restart(id: string, ctx?: CallContext): Promise<MachineView>;
  /** Freezes a running machine's vCPUs; answers once it is `paused`. */
  pause(id: string, ctx?: CallContext): Promise<MachineView>;
  /** Lets a paused machine run again; answers once it is `running`, its clock set from the host's. */
  resume(id: string, ctx?: CallContext): Promise<MachineView>;
  /**
   * Saves a running or paused machine's memory and devices to disk and ends its VMM (`suspended`);
   * `resume` (or `start`) restores it with its processes alive, `stop` throws the state away.
   */
  suspend(id: string, ctx?: CallContext): Promise<MachineView>;
  /** Clones a running or paused machine `count` times (the source goes on); the clones are `starting`. */
  fork(id: string, count: number, ctx?: CallContext): Promise<MachineView[]>;
  /** Kills the VM if needed and removes the machine and its disk. */
  delete(id: string, ctx?: CallContext): Promise<void>;
  /**
   * Replaces the machine's secrets (a rotation). A running machine's /run/secrets files are
   * rewritten at once; its main process's environment changes at its next start.
   */
  setSecrets(id: string, secrets: Record<string, string>, ctx?: CallContext): Promise<MachineView>;
  /** The machine's restart and health events, oldest first (bounded). */
  events(id: string, ctx?: CallContext): Promise<WorkloadEvent[]>;
  /** Resolves when the machine is in `status`; WAIT_TIMEOUT after timeoutMs. */
  wait(id: string, status: MachineStatus, timeoutMs: number, ctx?: CallContext): Promise<MachineView>;
  exec(id: string, req: ExecRequest, ctx?: CallContext): Promise<ExecOutput>;
  /** Starts a streamed exec; resolves once it runs. MACHINE_PAUSED / MACHINE_NOT_RUNNING as exec. */
  execStream(id: string, req: ExecStreamRequest, ctx?: CallContext): Promise<ExecStreamHandle>;
  startProcess(id: string, req: ProcessStartRequest, ctx?: CallContext): Promise<ProcessView>;
  listProcesses(id: string, ctx?: CallContext): Promise<ProcessView[]>;
  /** PROCESS_NOT_FOUND, PROCESS_NOT_RUNNING. */
  signalProcess(id: string, pid: number, signal: number, ctx?: CallContext): Promise<ProcessView>;
  /** Its output (stdout and stderr interleaved); with `follow` it ends when the process exited, the machine stops, or ctx.signal fires. */
  processOutput(id: string, pid: number, req: LogsRequest, ctx?: CallContext): Promise<Buffer | AsyncIterable<Buffer>>;
  writeFile(id: string, path: string, data: Buffer, mode: number | undefined, ctx?: CallContext): Promise<{ size: number }>;
  /** FILE_TOO_LARGE when the file is bigger than `maxSize` bytes, whatever its stat says. */
  readFile(id: string, path: string, maxSize: number, ctx?: CallContext): Promise<Buffer>;
  stat(id: string, path: string, ctx?: CallContext): Promise<FileStatView>;
  removeFile(id: string, path: string, recursive: boolean, ctx?: CallContext): Promise<void>;
  /** The main process's output; with `follow` it ends when the process exited, the machine stops, or ctx.signal fires. */
  logs(id: string, req: LogsRequest, ctx?: CallContext): Promise<Buffer | AsyncIterable<Buffer>>;
  /** The machine's proxy access token (private services need it). MACHINE_NOT_FOUND. */
  accessToken(id: string, ctx?: CallContext): Promise<string>;
  /** Replaces it: the old one stops working at once. MACHINE_NOT_FOUND. */
  rotateAccessToken(id: string, ctx?: CallContext): Promise<string>;
}

/** A snapshot as the API shows it. */
export type SnapshotView = Pick<SnapshotRecord, "id" | "machineId" | "sizeBytes" | "createdAt"> & {
  vcpuCount: number;
  memSizeMib: number;
  image: string | null;
  network: boolean;
};

export interface CreateVolumeRequest {
  name: string;
  sizeMib: number;
}

/** Volumes (docs/agents.md "Volumes"); `ref` is a `vol_...` id or a name. */
export interface VolumeServicePort {
  /** VOLUME_ALREADY_EXISTS for a taken name; INVALID_ARGUMENT above HYPERFLEET_VOLUME_MAX_SIZE_MIB. */
  create(req: CreateVolumeRequest): Promise<VolumeRecord>;
  list(): Promise<VolumeRecord[]>;
  /** VOLUME_NOT_FOUND when there is none. */
  get(ref: string): Promise<VolumeRecord>;
  /** VOLUME_IN_USE while a machine holds it; the file and its data go with it. */
  delete(ref: string): Promise<void>;
}

export interface SnapshotServicePort {
  /** Snapshots a running or paused machine, which goes on as it was (MACHINE_NOT_RUNNING otherwise). */
  create(machineId: string, ctx?: CallContext): Promise<SnapshotView>;
  list(ctx?: CallContext): Promise<SnapshotView[]>;
  /** SNAPSHOT_NOT_FOUND when there is no such snapshot. */
  get(id: string, ctx?: CallContext): Promise<SnapshotView>;
  /** SNAPSHOT_IN_USE while machines created from it exist. */
  delete(id: string, ctx?: CallContext): Promise<void>;
}
