/**
 * What repositories hand out: rows with JSON parsed, times as ISO strings, status typed.
 */
import type { MachineStatus } from "../core/machine-state.js";

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
}

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
>;

/** Fields that may change together with a status transition. */
export type MachinePatch = Partial<
  Pick<
    MachineRecord,
    "pid" | "lastError" | "kernelImagePath" | "initrdPath" | "kernelArgs" | "rootfsPath" | "startedAt" | "stoppedAt"
  >
>;

export interface MachineEvent {
  fromStatus: MachineStatus | null;
  toStatus: MachineStatus;
  reason: string | null;
  at: string;
}
