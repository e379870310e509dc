/**
 * The VMM driver port: what the rest of Hyperfleet needs from a hypervisor process, small enough
 * that QEMU and Firecracker both fit. Drivers own the VMM process only; the machine lifecycle
 * (states, persistence) lives above them.
 */
import type { Duplex } from "node:stream";

export type VmmKind = "qemu" | "firecracker";

export interface NicSpec {
  /** Host TAP device name. */
  tap: string;
  mac: string;
}

export interface DiskSpec {
  path: string;
  readOnly?: boolean;
  /** "raw" or "qcow2" (QEMU only; Firecracker takes raw). */
  format?: "raw" | "qcow2";
  /** The disk's virtio serial (QEMU only, at most 20 bytes): how the guest finds a volume's disk. */
  serial?: string;
}

/** Everything needed to boot one VM. Paths are absolute. */
export interface VmSpec {
  id: string;
  vcpus: number;
  memMib: number;
  /** Kernel: bzImage or ELF vmlinux for QEMU, ELF vmlinux for Firecracker. */
  kernelPath: string;
  initrdPath?: string;
  kernelArgs: string;
  rootDisk: DiskSpec;
  extraDisks?: DiskSpec[];
  nics?: NicSpec[];
  /**
   * `/run/netns/<name>`: the network namespace the VMM process runs in (its TAPs are there); absent:
   * the daemon's own. The driver launches the VMM through `nsenter --net=<path>`, which execs it, so
   * the pid and command-line checks of adoption are unchanged.
   */
  netns?: string;
  /** Directory for this VM's sockets, pidfile and console log (created by the driver). */
  runDir: string;
  /**
   * Where the VMM's control socket goes (QEMU: QMP; Firecracker: its API socket, `--api-sock`);
   * absent: in runDir. Set by library callers who name their sockets (the SDK example's `socketPath`).
   */
  controlSocket?: string;
  /** Where the host end of the agent channel goes (QEMU: the virtio-serial socket; Firecracker: the hybrid vsock `uds_path`); absent: in runDir. */
  agentSocket?: string;
  /** Firecracker's vsock guest CID (>= 3; each VM has its own vsock device, so it need not be unique). Default 3. */
  guestCid?: number;
}

export type VmmProcessState = "running" | "paused" | "exited" | "unknown";

/** How an exit was noticed: our child's exit event, the QMP socket closing, or the /proc poll. */
export type VmmExitDetection = "child-exit" | "qmp-close" | "poll";

export interface VmmStatus {
  state: VmmProcessState;
  pid: number | null;
  /** Exit code or signal once exited, when known (only for processes this driver spawned). */
  exitCode?: number | null;
  signal?: string | null;
  detectedBy?: VmmExitDetection;
}

/** A live (or adopted) VMM process. */
export interface VmHandle {
  readonly id: string;
  readonly pid: number;
  readonly runDir: string;
  readonly consoleLogPath: string;
  /** Opens a fresh byte stream to the guest agent (virtio-serial socket or vsock UDS + CONNECT). */
  connectAgent(signal?: AbortSignal): Promise<Duplex>;
  status(): Promise<VmmStatus>;
  /** Resolves when the VMM process is gone. */
  exited(): Promise<VmmStatus>;
  /** Asks the VMM to shut the guest down (ACPI / CtrlAltDel); resolves when the process exited or rejects after timeoutMs. */
  requestStop(timeoutMs: number): Promise<void>;
  /** SIGKILL the VMM process and wait for it to go. */
  kill(): Promise<void>;
  /**
   * Freezes the guest's vCPUs; its memory and devices stay as they are, and status() says "paused".
   * The guest sees no event: its agent just stops answering until resume(). QEMU: QMP `stop`;
   * Firecracker: `PATCH /vm {"state": "Paused"}`. Pausing a paused VM is not an error.
   */
  pause(): Promise<void>;
  /**
   * Lets a paused guest run again (QEMU: QMP `cont`; Firecracker: `PATCH /vm {"state": "Resumed"}`).
   * The guest's clock does not count the paused time: setting it is the caller's business.
   */
  resume(): Promise<void>;
  /**
   * Saves the VM into `opts.dir` (an empty directory the caller made; it owns the files) and leaves
   * the guest paused: the caller resumes it (a snapshot, a fork) or kills it (a suspend). The
   * files are complete once this resolves; a failure may leave partial files for the caller to
   * remove. QEMU: `stop`, then migration to a file; Firecracker: `PATCH /vm` Paused, then
   * `PUT /snapshot/create` (always a full memory file, which fits both purposes).
   */
  snapshot(opts: SnapshotOptions): Promise<VmSnapshot>;
  /** The last lines of the VMM's own log (bounded), for error messages; "" when it has none. */
  logTail?(): Promise<string>;
  /** Removes sockets, pidfile and runtime files (the console log is kept unless `all`). */
  cleanup(opts?: { all?: boolean }): Promise<void>;
  /**
   * Lets go of the VMM without touching it: closes our control connection and keeps its files, so
   * another driver instance can adopt it (QEMU's QMP socket takes one client at a time).
   */
  detach(): void;
}

/**
 * What a snapshot is for:
 * - `clone`: any number of new VMs start from it while the source goes on. Memory goes to its own
 *   file, which clones map private and copy-on-write (loaded lazily, shared in the page cache),
 *   and the root disk is frozen by a copy (clones get an overlay on it).
 * - `suspend`: the same VM comes back later on the same disk: memory and device state in one
 *   stream, the disk left where it is.
 */
export type SnapshotPurpose = "clone" | "suspend";

export interface SnapshotOptions {
  dir: string;
  purpose: SnapshotPurpose;
}

/**
 * A saved VM. Paths are absolute and inside `dir` (clones' disks refer to `disk` by its path, so
 * a snapshot is written where it stays). Restoring needs a VmSpec of the same shape (vCPUs, memory,
 * devices in the same order) as the source's: device state refers to devices, not to paths.
 */
export interface VmSnapshot {
  dir: string;
  purpose: SnapshotPurpose;
  /** Device state (QEMU: the migration stream; Firecracker: the vmstate file). */
  stateFile: string;
  /** Guest memory as a file clones map; null when the memory is inside stateFile (QEMU suspend). */
  memoryFile: string | null;
  /** The root disk as it was at snapshot time (clone only; suspend keeps the VM's own disk). */
  disk: DiskSpec | null;
  /** Bytes the snapshot's files hold on disk (sparse files count what is allocated). */
  sizeBytes: number;
}

export interface VmmDriver {
  readonly kind: VmmKind;
  /** How guests run: hardware virtualisation or QEMU's software emulation (Firecracker: always kvm). */
  readonly accel: "kvm" | "tcg";
  /** Spawns the VMM (own session, survives its parent) and returns once it is running. */
  start(spec: VmSpec, signal?: AbortSignal): Promise<VmHandle>;
  /**
   * Starts a VMM from a snapshot and returns once its guest runs again (where the snapshot froze it;
   * its agent must be reconnected). `spec` is the new VM: its own id, run dir, root disk (for a
   * clone an overlay on `snapshot.disk`; for a suspend the same disk as before), TAP namespace.
   */
  restore(spec: VmSpec, snapshot: VmSnapshot, signal?: AbortSignal): Promise<VmHandle>;
  /**
   * Names what saved state this VMM can restore: its build and acceleration (QEMU's device state
   * differs between versions, and KVM's CPU model from TCG's). Part of a warm template's key.
   */
  fingerprint(): Promise<string>;
  /** Re-attaches to a VMM process left by an earlier daemon, from the files in runDir; null if it is gone. */
  adopt(id: string, runDir: string): Promise<VmHandle | null>;
}
