/**
 * Volumes: named persistent disks (issue 14, docs/agents.md "Volumes"). A volume is a sparse raw
 * ext4 file under `<dataDir>/volumes/`, formatted on first use; a machine names it at create, holds
 * it until deleted (one writer at a time), and its guest mounts it through the agent's MOUNT.
 * Pure: the model and the rules of a request; the store keeps who holds what.
 */
import { HyperfleetError } from "./errors.js";

export interface VolumeRecord {
  /** `vol_<ULID>`. */
  id: string;
  name: string;
  sizeMib: number;
  createdAt: string;
  /** The machine that holds it (named it at create, not yet deleted); null: free. */
  machineId: string | null;
}

/** A volume as a machine has it, in the order of the create request (its disk order). */
export interface VolumeAttachment {
  volumeId: string;
  name: string;
  /** Absolute path in the guest, created by the agent. */
  mount: string;
  readOnly: boolean;
}

/** What a create request asks for: a volume by name and where it goes. */
export interface VolumeRequest {
  name: string;
  mount: string;
  readOnly?: boolean;
}

/** Each volume is a disk on the VM's bus and a MOUNT at boot: a few are plenty for an agent. */
export const MAX_VOLUMES_PER_MACHINE = 8;

/** The filesystem volumes are formatted with (on the host) and mounted as (in the guest). */
export const VOLUME_FSTYPE = "ext4";

/**
 * The virtio-blk serial of a machine's i-th volume disk. The guest has no udev and vdX names
 * follow probe order, so the agent finds a volume's disk by this (/sys/block/<dev>/serial); at
 * most 20 bytes, virtio-blk's serial size.
 */
export function volumeSerial(index: number): string {
  return `hfvol${index}`;
}

/** The Firecracker guest's device of the i-th volume: no serials there, drives come after the root disk (vda) in order. */
export function volumeDevice(index: number): string {
  return `/dev/vd${String.fromCharCode("b".charCodeAt(0) + index)}`;
}

function invalid(field: string, message: string): HyperfleetError {
  return new HyperfleetError("INVALID_ARGUMENT", `${field}: ${message}`, { details: { field } });
}

/**
 * The rules a schema cannot express: a mount path is absolute, not `/`, has no `.` or `..`
 * component (it would mount over the guest's own tree or escape what was meant), no two volumes
 * share a name or a mount path, at most MAX_VOLUMES_PER_MACHINE. Throws INVALID_ARGUMENT.
 */
export function checkVolumeRequests(reqs: readonly VolumeRequest[]): void {
  if (reqs.length > MAX_VOLUMES_PER_MACHINE) throw invalid("volumes", `at most ${MAX_VOLUMES_PER_MACHINE} volumes per machine`);
  const names = new Set<string>();
  const mounts = new Set<string>();
  reqs.forEach((r, i) => {
    const field = `volumes[${i}].mount`;
    if (!r.mount.startsWith("/")) throw invalid(field, "must be an absolute path");
    const parts = r.mount.split("/").filter((p) => p !== "");
    if (parts.length === 0) throw invalid(field, "must not be /");
    if (parts.some((p) => p === ".." || p === ".")) throw invalid(field, "must not have a '.' or '..' component");
    const norm = `/${parts.join("/")}`;
    if (names.has(r.name)) throw invalid(`volumes[${i}].name`, `volume '${r.name}' is named twice`);
    if (mounts.has(norm)) throw invalid(field, `two volumes are mounted at ${norm}`);
    names.add(r.name);
    mounts.add(norm);
  });
}

/** The mount path as recorded: one slash between components, none at the end. */
export function normalMount(mount: string): string {
  return `/${mount.split("/").filter((p) => p !== "").join("/")}`;
}
