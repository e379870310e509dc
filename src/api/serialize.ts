/** Service views -> wire JSON (snake_case), kept apart from routes so every route answers alike. */
import type { MachineJson } from "./schemas/machine.js";
import type { FileStatView, MachineView } from "./service.js";

export function machineJson(m: MachineView): MachineJson {
  return {
    id: m.id,
    name: m.name,
    status: m.status,
    vcpu_count: m.vcpuCount,
    mem_size_mib: m.memSizeMib,
    image_ref: m.imageRef,
    kernel_image_path: m.kernelImagePath,
    initrd_path: m.initrdPath,
    kernel_args: m.kernelArgs,
    rootfs_path: m.rootfsPath,
    pid: m.pid,
    network: m.network,
    env: m.env,
    metadata: m.metadata,
    last_error: m.lastError,
    created_at: m.createdAt,
    updated_at: m.updatedAt,
    status_changed_at: m.statusChangedAt,
    started_at: m.startedAt,
    stopped_at: m.stoppedAt,
  };
}

export function statJson(path: string, s: FileStatView) {
  return {
    path,
    type: s.type,
    size: s.size,
    mode: s.mode,
    permissions: (s.mode & 0o7777).toString(8).padStart(4, "0"),
    uid: s.uid,
    gid: s.gid,
    mtime: s.mtime.toISOString(),
  };
}
