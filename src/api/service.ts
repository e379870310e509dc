/**
 * The port the HTTP routes call. The daemon's MachineService implements it; the API never imports
 * the daemon, the store or the VM library, so routes can be exercised with any implementation.
 * Methods throw HyperfleetError; the API maps codes to HTTP status (src/api/errors.ts).
 */
import type { FastifyBaseLogger } from "fastify";
import type { MachineStatus } from "../core/machine-state.js";

/** Per-call context: the request's child logger and an abort signal (client went away). */
export interface CallContext {
  log?: FastifyBaseLogger;
  signal?: AbortSignal;
}

/** A machine as the API shows it (camelCase here; snake_case on the wire). */
export interface MachineView {
  id: string;
  name: string;
  status: MachineStatus;
  vcpuCount: number;
  memSizeMib: number;
  imageRef: string | null;
  kernelImagePath: string | null;
  initrdPath: string | null;
  kernelArgs: string | null;
  rootfsPath: string | null;
  pid: number | null;
  network: Record<string, unknown> | null;
  env: Record<string, string>;
  metadata: Record<string, string>;
  lastError: { code: string; message: string } | null;
  createdAt: string;
  updatedAt: string;
  statusChangedAt: string;
  startedAt: string | null;
  stoppedAt: string | null;
}

export interface CreateMachineRequest {
  name: string;
  vcpuCount: number;
  memSizeMib: number;
  env: Record<string, string>;
  metadata: Record<string, string>;
  /** Boot right away (the call still returns before the guest is up). */
  start: boolean;
}

export interface ExecRequest {
  command: string[];
  env?: Record<string, string>;
  cwd?: string;
  user?: string;
  timeoutMs: number;
  stdin?: string;
}

export interface ExecOutput {
  exitCode: number | null;
  signal: number | null;
  stdout: string;
  stderr: string;
  durationMs: number;
}

export interface FileStatView {
  size: number;
  mode: number;
  uid: number;
  gid: number;
  mtime: Date;
  type: "file" | "directory" | "symlink" | "other";
}

export interface MachineServicePort {
  list(filter: { status?: readonly MachineStatus[] }, ctx?: CallContext): Promise<MachineView[]>;
  /** MACHINE_NOT_FOUND when there is no such machine. */
  get(id: string, ctx?: CallContext): Promise<MachineView>;
  create(req: CreateMachineRequest, ctx?: CallContext): Promise<MachineView>;
  /** Lifecycle calls return once the first status change is persisted (e.g. `starting`). */
  start(id: string, ctx?: CallContext): Promise<MachineView>;
  stop(id: string, ctx?: CallContext): Promise<MachineView>;
  restart(id: string, ctx?: CallContext): Promise<MachineView>;
  /** Kills the VM if needed and removes the machine and its disk. */
  delete(id: string, ctx?: CallContext): Promise<void>;
  /** Resolves when the machine is in `status`; WAIT_TIMEOUT after timeoutMs. */
  wait(id: string, status: MachineStatus, timeoutMs: number, ctx?: CallContext): Promise<MachineView>;
  exec(id: string, req: ExecRequest, ctx?: CallContext): Promise<ExecOutput>;
  writeFile(id: string, path: string, data: Buffer, mode: number | undefined, ctx?: CallContext): Promise<{ size: number }>;
  /** FILE_TOO_LARGE when the file is bigger than `maxSize` bytes. */
  readFile(id: string, path: string, maxSize: number, ctx?: CallContext): Promise<Buffer>;
  stat(id: string, path: string, ctx?: CallContext): Promise<FileStatView>;
  removeFile(id: string, path: string, recursive: boolean, ctx?: CallContext): Promise<void>;
}
