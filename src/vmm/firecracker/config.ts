/**
 * Pure builders of the Firecracker API requests the driver sends, in the order it sends them. No
 * socket here: the driver (not written yet) plays these over the API socket, and the contract test
 * checks each one against Firecracker's API definition (spec.ts).
 */
import { join } from "node:path";
import { HyperfleetError } from "../../core/errors.js";
import type { DiskSpec, VmSpec } from "../../core/ports/vmm-driver.js";
import type { FcMethod } from "./spec.js";

export interface FcRequest {
  method: FcMethod;
  path: string;
  body?: unknown;
}

/** Host-side files of one Firecracker VM. */
export interface FcPaths {
  apiSocket: string;
  /** Firecracker's own log (a file or FIFO that must exist: Firecracker opens, never creates, it). */
  log: string;
  metrics: string;
  /** Serial console output (ttyS0). */
  console: string;
  /** Hybrid vsock: host-initiated connections go through this Unix socket. */
  vsockUds: string;
}

export function firecrackerPaths(runDir: string): FcPaths {
  return {
    apiSocket: join(runDir, "firecracker.sock"),
    log: join(runDir, "firecracker.log"),
    metrics: join(runDir, "firecracker.metrics"),
    console: join(runDir, "console.log"),
    vsockUds: join(runDir, "vsock.sock"),
  };
}

export interface FcConfigOptions {
  /** Guest CID (>= 3). With hybrid vsock each VM has its own device, so CIDs need not be unique. */
  guestCid: number;
}

// Firecracker's checked_id: device ids are [A-Za-z0-9_]{1,64} and must equal the body's id.
export const ROOT_DRIVE_ID = "rootfs";
export const extraDriveId = (i: number) => `disk${i + 1}`;
export const ifaceId = (i: number) => `eth${i}`;

/**
 * The kernel command line as sent: always explicit, since without boot_args Firecracker uses its
 * default, which has `nomodule` (our virtio drivers are modules in the initramfs). A `nomodule` in
 * the VM's own args would make the guest boot without disk or agent, so it is dropped too.
 */
export function firecrackerBootArgs(kernelArgs: string): string {
  return kernelArgs.split(/\s+/).filter((a) => a !== "" && a !== "nomodule").join(" ");
}

function drive(id: string, disk: DiskSpec, root: boolean): FcRequest {
  // Firecracker takes raw images only; a qcow2 here would boot a guest that sees garbage.
  if (disk.format === "qcow2") throw new HyperfleetError("NOT_SUPPORTED_YET", `${disk.path}: Firecracker takes raw disk images only, not qcow2`);
  return {
    method: "PUT",
    path: `/drives/${id}`,
    body: { drive_id: id, path_on_host: disk.path, is_root_device: root, is_read_only: disk.readOnly ?? false },
  };
}

/** Logger and metrics: the only resources allowed before a snapshot load, so both paths share them. */
export function observabilityRequests(paths: FcPaths): FcRequest[] {
  return [
    { method: "PUT", path: "/logger", body: { log_path: paths.log, level: "Warning", show_level: true, show_log_origin: false } },
    { method: "PUT", path: "/metrics", body: { metrics_path: paths.metrics } },
  ];
}

/** Everything from a fresh process to a running guest, in Firecracker's documented order. */
export function buildConfigureRequests(spec: VmSpec, paths: FcPaths, opts: FcConfigOptions): FcRequest[] {
  const bootSource: Record<string, string> = { kernel_image_path: spec.kernelPath, boot_args: firecrackerBootArgs(spec.kernelArgs) };
  if (spec.initrdPath) bootSource.initrd_path = spec.initrdPath;
  return [
    ...observabilityRequests(paths),
    { method: "PUT", path: "/serial", body: { serial_out_path: paths.console } },
    { method: "PUT", path: "/boot-source", body: bootSource },
    drive(ROOT_DRIVE_ID, spec.rootDisk, true),
    ...(spec.extraDisks ?? []).map((d, i) => drive(extraDriveId(i), d, false)),
    { method: "PUT", path: "/machine-config", body: { vcpu_count: spec.vcpus, mem_size_mib: spec.memMib, smt: false } },
    ...(spec.nics ?? []).map((n, i): FcRequest => ({
      method: "PUT",
      path: `/network-interfaces/${ifaceId(i)}`,
      body: { iface_id: ifaceId(i), host_dev_name: n.tap, guest_mac: n.mac },
    })),
    { method: "PUT", path: "/vsock", body: { guest_cid: opts.guestCid, uds_path: paths.vsockUds } },
    { method: "PUT", path: "/entropy", body: {} },
    instanceStart(),
  ];
}

export const instanceStart = (): FcRequest => ({ method: "PUT", path: "/actions", body: { action_type: "InstanceStart" } });
export const sendCtrlAltDel = (): FcRequest => ({ method: "PUT", path: "/actions", body: { action_type: "SendCtrlAltDel" } });
export const pauseVm = (): FcRequest => ({ method: "PATCH", path: "/vm", body: { state: "Paused" } });
export const resumeVm = (): FcRequest => ({ method: "PATCH", path: "/vm", body: { state: "Resumed" } });

/** A full snapshot (memory and device state in separate files); the VM must be paused first. */
export function snapshotCreate(statePath: string, memPath: string): FcRequest {
  return { method: "PUT", path: "/snapshot/create", body: { snapshot_type: "Full", snapshot_path: statePath, mem_file_path: memPath } };
}

export interface FcLoadOptions {
  statePath: string;
  memPath: string;
  resume: boolean;
}

/**
 * A fresh process restoring a snapshot: logger and metrics, then the load. The new VM's TAPs and
 * vsock socket replace the saved ones (device order, hence iface ids, is the source's).
 */
export function buildRestoreRequests(spec: VmSpec, paths: FcPaths, load: FcLoadOptions): FcRequest[] {
  const body: Record<string, unknown> = {
    snapshot_path: load.statePath,
    mem_backend: { backend_type: "File", backend_path: load.memPath },
    resume_vm: load.resume,
    vsock_override: { uds_path: paths.vsockUds },
  };
  const nics = spec.nics ?? [];
  if (nics.length > 0) body.network_overrides = nics.map((n, i) => ({ iface_id: ifaceId(i), host_dev_name: n.tap }));
  return [...observabilityRequests(paths), { method: "PUT", path: "/snapshot/load", body }];
}
