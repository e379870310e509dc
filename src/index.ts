/** Public library surface: the Machine entry point, its results and errors, and the agent client. */
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
