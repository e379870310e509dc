/** Public library surface: the in-process Machine, the HTTP client (HyperfleetClient), their results and errors, and the agent client. */
export {
  Machine,
  type MachineOptions,
  type ExecOptions,
  type ExecResult,
  type FileStat,
  type MachineNetworkOptions,
  type MachineNetworkHost,
  type MachineNetwork,
  type ExposedPort,
  type ExposedPortRequest,
} from "./embed/machine.js";
export { HyperfleetError, isHyperfleetError, ERROR_CODES, type ErrorCode, type ErrorCategory } from "./core/errors.js";
export { type Result, Ok, Err } from "./core/result.js";
export { AgentClient } from "./agent/client.js";
export type { VmmDriver, VmHandle, VmSpec, VmmStatus } from "./core/ports/vmm-driver.js";
export { QemuDriver } from "./vmm/qemu/driver.js";
export {
  HyperfleetClient,
  HyperfleetApiError,
  type HyperfleetClientOptions,
  type CallOptions,
  type RemoteExecOptions,
  type LogsOptions,
  type WaitOptions,
  type CreateMachineBody,
  type MachineJson,
  type ExecResponse,
  type ImageJson,
  type SnapshotJson,
  type StatResponse,
  type MachineStatus,
  type ExecStream,
  type ExecStreamOptions,
  type ExecExit,
  type UploadSource,
  type ProcessOutputOptions,
} from "./sdk/index.js";
