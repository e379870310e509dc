/**
 * Firecracker's `fault_message` texts (pure). The wording is Firecracker's where its source gives
 * it (api_server/parsed_request.rs, request/*.rs, vmm/rpc_interface.rs, vmm_config/*.rs,
 * persist.rs): each VMM error is `<category>: <detail>` (the VmmActionError display), which is what
 * a driver can key on; a detail that wraps a host error ends in Rust's io::Error display.
 */

/** An answer other than success: Firecracker's JSON `{"fault_message": ...}` with its status. */
export class Fault extends Error {
  constructor(
    message: string,
    readonly status = 400,
    /** After this answer the process ends, as Firecracker does after a failed snapshot restore. */
    readonly fatal = false,
  ) {
    super(message);
  }
}

const ERRNO: Record<string, [number, string]> = {
  ENOENT: [2, "No such file or directory"],
  EACCES: [13, "Permission denied"],
  EPERM: [1, "Operation not permitted"],
  EISDIR: [21, "Is a directory"],
  ENOTDIR: [20, "Not a directory"],
  EADDRINUSE: [98, "Address in use"],
  ENXIO: [6, "No such device or address"],
  ELOOP: [40, "Too many levels of symbolic links"],
  ENAMETOOLONG: [36, "File name too long"],
};

/** Rust's `io::Error` display for a Node system error: `No such file or directory (os error 2)`. */
export function osErrorText(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code ?? "";
  const known = ERRNO[code];
  if (known) return `${known[1]} (os error ${known[0]})`;
  const errno = (e as NodeJS.ErrnoException).errno;
  return errno !== undefined ? `${(e as Error).message} (os error ${Math.abs(errno)})` : String((e as Error).message ?? e);
}

// VmmActionError (rpc_interface.rs).
export const NOT_SUPPORTED_POST_BOOT = "The requested operation is not supported after starting the microVM.";
export const NOT_SUPPORTED_PRE_BOOT = "The requested operation is not supported before starting the microVM.";
export const LOAD_NOT_ALLOWED = "Load snapshot error: Loading a microVM snapshot not allowed after configuring boot-specific resources.";
export const MISSING_KERNEL = "Start microvm error: Cannot start microvm without kernel configuration.";

// RequestError (parsed_request.rs) and request/*.rs.
export const EMPTY_ID = "The ID cannot be empty.";
export const INVALID_ID = "API Resource IDs can only contain alphanumeric characters and underscores.";
export const ID_MISMATCH = "The id from the path does not match the id from the body!";
export const GET_WITH_BODY = "GET request cannot have a body.";
export const emptyRequest = (method: string) => `Empty ${method} request.`;
export const invalidPathMethod = (method: string, segment: string) => `Invalid request method and/or path: ${method} ${segment}.`;
export const deserialize = (detail: string) => `An error occurred when deserializing the json body of a request: ${detail}.`;
export const MEM_MISSING = "missing field: either `mem_backend` or `mem_file_path` is required";
export const MEM_TOO_MANY = "too many fields: either `mem_backend` or `mem_file_path` exclusively is required";
export const payloadTooLarge = (size: number, limit: number) =>
  `Request payload with size ${size} is larger than the limit of ${limit} allowed by server.\nAll previous unanswered requests will be dropped.`;

// vmm_config/*.rs under their VmmActionError category.
export const kernelOpen = (e: unknown) => `Boot source error: The kernel file cannot be opened: ${osErrorText(e)}`;
export const initrdOpen = (e: unknown) => `Boot source error: The initrd file cannot be opened due to invalid path or invalid permissions. ${osErrorText(e)}`;
export const ROOT_DRIVE_EXISTS = "Drive config error: A root block device already exists!";
export const driveOpen = (e: unknown, path: string) =>
  `Drive config error: Unable to create the virtio block device: Virtio backend error: Error manipulating the backing file: ${osErrorText(e)} ${path}`;
export const drivePatchUnknown = (id: string) =>
  `Drive config error: Unable to patch the block device: Device manager error: Invalid device ID: ${id} Please verify the request arguments.`;
export const INVALID_VCPUS = "Machine config error: The number of vCPUs must be greater than 0, less than 32 and must be 1 or an even number if SMT is enabled.";
export const INVALID_MEM = "Machine config error: The memory size (MiB) is either 0, or not a multiple of the configured page size.";
export const loggerOpen = (e: unknown) => `Logger error: Failed to open target file: ${osErrorText(e)}`;
export const metricsOpen = (e: unknown) => `Metrics error: Cannot initialize the metrics system due to the following error: ${osErrorText(e)}`;
export const METRICS_REINIT = "Metrics error: Reinitialization of metrics not allowed.";
export const vsockBind = (e: unknown) => `Vsock config error: Cannot create backend for vsock device: Error binding to the host-side Unix socket: ${osErrorText(e)}`;
export const netUnknownIface = (id: string) => `Network config error: Could not find the network device to update: ${id}`;

// persist.rs: CreateSnapshotError / RestoreFromSnapshotError under their categories.
export const CREATE_WHILE_RUNNING = "Create snapshot error: Cannot save the microVM state: Operation not allowed: save/restore unavailable while running";
export const createFile = (what: "snapshot" | "memory", op: string, e: unknown) =>
  `Create snapshot error: Cannot perform ${op} on the ${what} backing file: ${osErrorText(e)}`;
const RESTORE = "Load snapshot error: Failed to restore from snapshot:";
export const loadStateOpen = (e: unknown) => `${RESTORE} Failed to get snapshot state from file: Failed to open snapshot file: ${osErrorText(e)}`;
export const loadStateMagic = (magic: bigint) => `${RESTORE} Failed to get snapshot state from file: Failed to load snapshot state from file: Magic value does not match arch: ${magic}`;
export const loadStateCorrupt = (why: string) => `${RESTORE} Failed to get snapshot state from file: Failed to load snapshot state from file: ${why}`;
export const loadMemOpen = (e: unknown) => `${RESTORE} Failed to load guest memory: Error creating guest memory from file: Failed to load guest memory: ${osErrorText(e)}`;
export const loadMemSize = (want: number, got: number) =>
  `${RESTORE} Failed to load guest memory: Error creating guest memory from file: Failed to restore guest memory: the memory file has ${got} bytes, the snapshot describes ${want}`;
export const loadDrive = (path: string, e: unknown) => `${RESTORE} Failed to build microVM from snapshot: Cannot restore devices: Block(${osErrorText(e)} ${path})`;
export const loadOverride = (what: string) => `${RESTORE} Failed to build microVM from snapshot: ${what}`;
export const UFFD_UNSUPPORTED = `${RESTORE} Failed to load guest memory: Error creating guest memory from uffd: the Firecracker stand-in serves File backends only`;
