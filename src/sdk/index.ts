/** The HTTP SDK: the client, its errors, and the wire types it speaks (one definition, src/contract). */
export { HyperfleetClient, type HyperfleetClientOptions } from "./client.js";
export { HyperfleetApiError } from "./errors.js";
export { clientEnvironment, DEFAULT_URL, type ClientEnvironment } from "./env.js";
export type { CallOptions } from "./transport.js";
export type { ExecOptions as RemoteExecOptions, LogsOptions, WaitOptions } from "./machines.js";
export type { Machines } from "./machines.js";
export type { Files, UploadSource } from "./files.js";
export type { Processes, ProcessOutputOptions } from "./processes.js";
export type { ExecStream, ExecStreamOptions, ExecExit } from "./exec-stream.js";
export type { Images } from "./images.js";
export type { Snapshots } from "./snapshots.js";
export type { Volumes } from "./volumes.js";
export type { CreateMachineBody, MachineJson, ExecBody, ExecResponse, ImageJson, RegistryAuth, SnapshotJson, StatResponse, UploadResponse } from "../contract/index.js";
export type { MachineStatus } from "../core/machine-state.js";
export type { CreateVolumeBody, VolumeJson } from "../contract/index.js";
