/**
 * The machine model: one description of a machine, used by every layer. The store maps its rows
 * to it (JSON parsed, times as ISO strings, status typed); the API shows a MachineView (the model
 * plus what only the running daemon knows) and maps it to the wire format in src/contract/.
 */
import type { ErrorCode } from "./errors.js";
import type { MachineStatus } from "./machine-state.js";
import type { VmmKind } from "./ports/vmm-driver.js";
import type { SupervisionView } from "./health.js";
import type { VolumeAttachment } from "./volume.js";

/** The VMMs a machine can be created under (VmmDriver.kind). */
export const VMM_KINDS = ["qemu", "firecracker"] as const satisfies readonly VmmKind[];

/** A failure as recorded on a machine, a pull or a main process. */
export interface ErrorRef {
  code: ErrorCode;
  message: string;
}

/** What an image says a VM should run (the subset of its OCI config the daemon uses). */
export interface ImageRunConfig {
  entrypoint: string[];
  cmd: string[];
  env: Record<string, string>;
  workingDir: string | null;
  user: string | null;
  exposedPorts: Array<{ port: number; protocol: string }>;
}

/** Where an image pull is, in order. */
export const PULL_PHASES = ["resolving", "downloading", "unpacking", "building", "done"] as const;
export type PullPhase = (typeof PULL_PHASES)[number];

export const PULL_STATUSES = ["pulling", "done", "failed"] as const;
export type PullStatus = (typeof PULL_STATUSES)[number];

/** Progress and outcome of a machine's image pull. Byte and layer counts are of the download. */
export interface ImagePullState {
  status: PullStatus;
  phase: PullPhase;
  layersDone: number;
  layersTotal: number;
  bytesDone: number;
  bytesTotal: number;
  error: ErrorRef | null;
  startedAt: string;
  finishedAt: string | null;
}

/** What a machine's traffic may reach (docs/adr/0008); the request's `network` object. */
export interface NetworkPolicy {
  /** Egress to anything not denied below (NAT through the host). */
  internet: boolean;
  /** CIDRs reachable even when `internet` is false or another rule denies them (never other VMs). */
  allowOut: string[];
  /** CIDRs never reachable (unless also in allowOut). */
  denyOut: string[];
  /** Machines with the same name reach each other; null: none. */
  privateNetwork: string | null;
}

/**
 * A machine's network (docs/adr/0008), fixed at create and kept until delete: its slot of
 * HYPERFLEET_SUBNET and the addresses that follow from it. The guest itself always sees
 * 169.254.0.21 behind its own namespace; `ip` is what the host and peers reach it by.
 */
export interface MachineNetwork extends NetworkPolicy {
  slot: number;
  /** The VM's address (slot base + 1). */
  ip: string;
  /** The host end of the VM's veth (slot base). */
  gateway: string;
  mac: string;
  /** Resolvers the guest uses (HYPERFLEET_DNS or the host's). */
  dns: string[];
}

export const PORT_PROTOCOLS = ["tcp", "udp"] as const;
export type PortProtocol = (typeof PORT_PROTOCOLS)[number];

/** An exposed port as assigned at create: host_ip:host_port on the host -> guest_port in the VM. */
export interface ExposedPort {
  protocol: PortProtocol;
  hostIp: string;
  hostPort: number;
  guestPort: number;
}

/** An exposed port as asked for: host side optional (HYPERFLEET_PORTS_BIND, HYPERFLEET_PORT_RANGE). */
export interface ExposedPortRequest {
  guestPort: number;
  hostPort?: number;
  hostIp?: string;
  protocol?: PortProtocol;
}

export const MAIN_PROCESS_STATUSES = ["running", "exited", "failed"] as const;

/** The machine's main process (an image's Entrypoint + Cmd), as the guest last recorded it. */
export interface MainProcessState {
  /** `failed`: it could not be started (`error` says why). */
  status: (typeof MAIN_PROCESS_STATUSES)[number];
  pid: number | null;
  exitCode: number | null;
  signal: number | null;
  startedAt: string | null;
  exitedAt: string | null;
  error: ErrorRef | null;
}

export interface MachineRecord {
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
  runDir: string;
  pid: number | null;
  /** null: the machine has no network (`"network": false`, or HYPERFLEET_NETWORK_DEFAULT=off). */
  network: MachineNetwork | null;
  /** Host ports forwarded to the guest (only with a network); sorted by protocol, then host port. */
  exposedPorts: ExposedPort[];
  env: Record<string, string>;
  metadata: Record<string, string>;
  lastError: ErrorRef | null;
  createdAt: string;
  updatedAt: string;
  statusChangedAt: string;
  startedAt: string | null;
  stoppedAt: string | null;
  /** Manifest digest of the image, once pulled (the machine then holds it in the cache). */
  imageDigest: string | null;
  imageConfig: ImageRunConfig | null;
  /** Requested root disk size for the image; null: sized to the content. */
  imageSizeMib: number | null;
  imagePull: ImagePullState | null;
  /** Overrides of the image's Cmd, Entrypoint, WorkingDir and User; null: the image's. */
  cmd: string[] | null;
  entrypoint: string[] | null;
  workdir: string | null;
  user: string | null;
  /** The snapshot the machine was created from (it depends on it until deleted); null: none. */
  snapshotId: string | null;
  /**
   * What its next boot restores instead of booting afresh: `snapshot` (a machine created from one,
   * until its first boot), `suspend` (its own state saved by a suspend); null: a cold boot.
   */
  restoreFrom: RestoreSource | null;
  /**
   * The VMM it was created under (a clone: its snapshot's). Its disk, devices and saved state are
   * that VMM's: a daemon running another refuses to boot it (VMM_MISMATCH).
   */
  vmm: VmmKind;
  /** Guest ports served through the proxy (issue 14, "Per-VM URLs"); the first is `<name>.<domain>`'s. */
  services: ProxiedService[];
  /** Names of the machine's secrets, sorted; their sealed values stay in the store (never in a record). */
  secretNames: string[];
  /** Volumes it holds from create to delete, in disk order (docs/agents.md "Volumes"); empty: none. */
  volumes: VolumeAttachment[];
}

export const SERVICE_VISIBILITIES = ["public", "private"] as const;
export type ServiceVisibility = (typeof SERVICE_VISIBILITIES)[number];

/** A guest port the proxy serves; a private one needs the machine's access token. */
export interface ProxiedService {
  port: number;
  visibility: ServiceVisibility;
}

/** Where the proxy serves a machine's service (empty when the proxy is off). */
export interface ServiceUrl {
  port: number;
  url: string;
  visibility: ServiceVisibility;
}

export const RESTORE_SOURCES = ["snapshot", "suspend"] as const;
export type RestoreSource = (typeof RESTORE_SOURCES)[number];

/**
 * A machine as the API shows it: the model without what stays inside the daemon (run dir, image
 * config), with what only the running daemon knows (a pull's live counts, the main process).
 */
export type MachineView = Omit<MachineRecord, "runDir" | "imageConfig"> & {
  /** Only for a running machine that has one; null otherwise. */
  mainProcess: MainProcessState | null;
} & {
  /** Its services' proxy URLs (src/proxy); empty when the proxy is off. */
  urls: ServiceUrl[];
  /** `<name>.<domain>` for its first service; null when the proxy is off or cannot route the name. */
  nameUrl: string | null;
  /** Health check, restart policy and their state (src/workload/supervisor.ts); absent: none. */
  supervision?: SupervisionView;
};

/** Image fields of a new machine; all default to null. */
export type NewMachineImage = Partial<Pick<MachineRecord, "imageSizeMib" | "cmd" | "entrypoint" | "workdir" | "user">>;

/** Fields given when a machine is created; the repository fills status and timestamps. */
export type NewMachine = Pick<
  MachineRecord,
  | "id"
  | "name"
  | "vcpuCount"
  | "memSizeMib"
  | "imageRef"
  | "kernelImagePath"
  | "initrdPath"
  | "kernelArgs"
  | "rootfsPath"
  | "runDir"
  | "network"
  | "env"
  | "metadata"
  | "vmm"
> &
  NewMachineImage &
  Partial<Pick<MachineRecord, "snapshotId" | "restoreFrom" | "imageDigest" | "imageConfig" | "volumes">> &
  Partial<Pick<MachineRecord, "services">> & {
    /** The proxy's per-machine access token (never part of the record: only its own reads return it). */
    accessToken?: string;
    /** Secret name -> sealed value (src/host/secret-box.ts), written with the machine. */
    sealedSecrets?: Record<string, string>;
  };

/** Fields that may change together with a status transition. */
export type MachinePatch = Partial<
  Pick<
    MachineRecord,
    | "pid"
    | "lastError"
    | "kernelImagePath"
    | "initrdPath"
    | "kernelArgs"
    | "rootfsPath"
    | "startedAt"
    | "stoppedAt"
    | "imageDigest"
    | "imageConfig"
    | "imagePull"
    | "restoreFrom"
    | "snapshotId"
  >
>;

