/** Service views -> wire JSON (snake_case), kept apart from routes so every route answers alike. */
import type { ImageJson } from "../contract/images.js";
import type { MachineJson } from "../contract/machine.js";
import type { SnapshotJson } from "../contract/snapshot.js";
import type { MachineEventJson } from "../contract/health.js";
import type { SupervisionView, WorkloadEvent } from "../core/health.js";
import type { VolumeJson } from "../contract/volume.js";
import type { VolumeRecord } from "../core/volume.js";
import type { FileStatView, ImagePullState, ImageView, MachineView, MainProcessState, SnapshotView } from "../core/ports/services.js";

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
    network: m.network && {
      ip: m.network.ip,
      gateway: m.network.gateway,
      mac: m.network.mac,
      dns: m.network.dns,
      internet: m.network.internet,
      allow_out: m.network.allowOut,
      deny_out: m.network.denyOut,
      private_network: m.network.privateNetwork,
    },
    exposed_ports: m.exposedPorts.map((p) => ({ guest_port: p.guestPort, host_port: p.hostPort, host_ip: p.hostIp, protocol: p.protocol })),
    env: m.env,
    metadata: m.metadata,
    last_error: m.lastError,
    created_at: m.createdAt,
    updated_at: m.updatedAt,
    status_changed_at: m.statusChangedAt,
    started_at: m.startedAt,
    stopped_at: m.stoppedAt,
    image_digest: m.imageDigest,
    image_size_mib: m.imageSizeMib,
    image_pull: m.imagePull && pullJson(m.imagePull),
    cmd: m.cmd,
    entrypoint: m.entrypoint,
    workdir: m.workdir,
    user: m.user,
    main_process: m.mainProcess && mainProcessJson(m.mainProcess),
    snapshot_id: m.snapshotId,
    vmm: m.vmm,
    urls: m.urls.map((u) => ({ port: u.port, url: u.url, visibility: u.visibility })),
    name_url: m.nameUrl,
    secret_names: m.secretNames,
    ...supervisionJson(m.supervision),
    volumes: m.volumes.map((v) => ({ id: v.volumeId, name: v.name, mount: v.mount, read_only: v.readOnly })),
  };
}

/** Health check, health, restart policy and count; a view without them has none. */
function supervisionJson(s: SupervisionView | undefined) {
  const hc = s?.healthCheck ?? null;
  const health = s?.health ?? { status: "none" as const, failingStreak: 0, lastCheckAt: null, lastError: null };
  return {
    health_check: hc && {
      http: hc.probe.kind === "http" ? { port: hc.probe.port, path: hc.probe.path } : null,
      exec: hc.probe.kind === "exec" ? hc.probe.argv : null,
      interval_s: hc.intervalS,
      timeout_s: hc.timeoutS,
      retries: hc.retries,
      start_period_s: hc.startPeriodS,
    },
    health: { status: health.status, failing_streak: health.failingStreak, last_check_at: health.lastCheckAt, last_error: health.lastError },
    restart_policy: { policy: s?.restartPolicy.policy ?? "no", max_restarts: s?.restartPolicy.maxRestarts ?? null },
    restart_count: s?.restartCount ?? 0,
  };
}

export function machineEventJson(e: WorkloadEvent): MachineEventJson {
  return { kind: e.kind, at: e.at, message: e.message, target: e.target, attempt: e.attempt, backoff_ms: e.backoffMs, health: e.health };
}

export function snapshotJson(s: SnapshotView): SnapshotJson {
  return {
    id: s.id,
    machine_id: s.machineId,
    size_bytes: s.sizeBytes,
    created_at: s.createdAt,
    vcpu_count: s.vcpuCount,
    mem_size_mib: s.memSizeMib,
    image: s.image,
    network: s.network,
  };
}

function pullJson(p: ImagePullState) {
  return {
    status: p.status,
    phase: p.phase,
    layers_done: p.layersDone,
    layers_total: p.layersTotal,
    bytes_done: p.bytesDone,
    bytes_total: p.bytesTotal,
    error: p.error,
    started_at: p.startedAt,
    finished_at: p.finishedAt,
  };
}

function mainProcessJson(p: MainProcessState) {
  return { status: p.status, pid: p.pid, exit_code: p.exitCode, signal: p.signal, started_at: p.startedAt, exited_at: p.exitedAt, error: p.error };
}

export function imageJson(i: ImageView): ImageJson {
  const c = i.config;
  return {
    refs: i.refs,
    digest: i.digest,
    resolved_ref: i.resolvedRef,
    size_bytes: i.sizeBytes,
    disk_size_mib: i.diskSizeMib,
    in_use: i.inUse,
    created_at: i.createdAt,
    last_used_at: i.lastUsedAt,
    platform: i.platform,
    config: { entrypoint: c.entrypoint, cmd: c.cmd, env: c.env, working_dir: c.workingDir, user: c.user, exposed_ports: c.exposedPorts },
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

export function volumeJson(v: VolumeRecord): VolumeJson {
  return { id: v.id, name: v.name, size_mib: v.sizeMib, created_at: v.createdAt, machine_id: v.machineId };
}
