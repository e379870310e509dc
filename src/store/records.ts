/**
 * What repositories hand out: rows with JSON parsed, times as ISO strings, status typed.
 */
import type { MachineStatus } from "../core/machine-state.js";

/** What an image says a VM should run (the subset of its OCI config the daemon uses). */
export interface ImageRunConfig {
  entrypoint: string[];
  cmd: string[];
  env: Record<string, string>;
  workingDir: string | null;
  user: string | null;
  exposedPorts: Array<{ port: number; protocol: string }>;
}

/** Progress and outcome of a machine's image pull. Byte and layer counts are of the download. */
export interface ImagePullState {
  status: "pulling" | "done" | "failed";
  phase: "resolving" | "downloading" | "unpacking" | "building" | "done";
  layersDone: number;
  layersTotal: number;
  bytesDone: number;
  bytesTotal: number;
  error: { code: string; message: string } | null;
  startedAt: string;
  finishedAt: string | null;
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
  network: Record<string, unknown> | null;
  env: Record<string, string>;
  metadata: Record<string, string>;
  lastError: { code: string; message: string } | null;
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
}

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
> &
  NewMachineImage;

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
  >
>;

export interface MachineEvent {
  fromStatus: MachineStatus | null;
  toStatus: MachineStatus;
  reason: string | null;
  at: string;
}
