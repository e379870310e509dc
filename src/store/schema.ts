/**
 * Kysely table types: the columns exactly as SQLite stores them (JSON as text, times as ISO-8601
 * strings). Repositories turn rows into the records the rest of the daemon uses.
 */
import type { Generated } from "kysely";

export interface MachinesTable {
  id: string;
  name: string;
  status: string;
  vcpu_count: number;
  mem_size_mib: number;
  image_ref: string | null;
  kernel_image_path: string | null;
  initrd_path: string | null;
  kernel_args: string | null;
  rootfs_path: string | null;
  run_dir: string;
  pid: number | null;
  /** JSON object or null. */
  network: string | null;
  /** JSON object of strings. */
  env: string;
  /** JSON object of strings. */
  metadata: string;
  last_error_code: string | null;
  last_error_message: string | null;
  created_at: string;
  updated_at: string;
  status_changed_at: string;
  started_at: string | null;
  stopped_at: string | null;
  /** Since 0002: the image's manifest digest once pulled. */
  image_digest: string | null;
  /** JSON ImageRunConfig, or null. */
  image_config: string | null;
  image_size_mib: number | null;
  /** JSON ImagePullState of the last pull, or null. */
  image_pull: string | null;
  /** JSON string arrays overriding the image's Cmd / Entrypoint, or null. */
  cmd: string | null;
  entrypoint: string | null;
  workdir: string | null;
  user: string | null;
  /** Since 0005: the snapshot it was created from, and what its next boot restores. */
  snapshot_id: string | null;
  restore_from: string | null;
  /** Since 0006: the VMM the machine was created under; "qemu" for older rows. */
  vmm: string;
  /** Since 0007: JSON ProxiedService[] (issue 14, per-VM URLs). */
  services: string;
  /** Since 0007: the proxy's access token; read only by its own queries, never into a record. */
  access_token: string | null;
  /** Since 0008: JSON object secret name -> sealed value (src/host/secret-box.ts); "{}": none. */
  secrets: string;
  /** Since 0010: JSON VolumeAttachment[] (the claims themselves are volumes.machine_id). */
  volumes: string;
}

export interface MachineEventsTable {
  id: Generated<number>;
  machine_id: string;
  from_status: string | null;
  to_status: string;
  reason: string | null;
  at: string;
}

export interface ApiKeysTable {
  id: string;
  /** Hex sha256 of the key; the key itself is never stored. */
  key_hash: string;
  source: string;
  created_at: string;
}

/** Since 0003: which machine holds which network slot (docs/adr/0008). */
export interface NetworkSlotsTable {
  slot: number;
  machine_id: string;
  allocated_at: string;
}

/** Since 0004: host ports forwarded to machines (docs/adr/0008). */
export interface ExposedPortsTable {
  machine_id: string;
  protocol: string;
  host_ip: string;
  host_port: number;
  guest_port: number;
}

/** Since 0005 (docs/adr/0009). */
export interface SnapshotsTable {
  id: string;
  machine_id: string;
  /** JSON VmSnapshot. */
  vm: string;
  /** JSON SnapshotSource. */
  source: string;
  size_bytes: number;
  auto: number;
  created_at: string;
  template_key: string | null;
  last_used_at: string;
}

/** Since 0009: a machine's health check, restart policy and restart counters (src/core/health.ts). */
export interface MachineSupervisionTable {
  machine_id: string;
  /** JSON HealthCheckSpec, or null. */
  health_check: string | null;
  /** JSON RestartPolicy. */
  restart_policy: string;
  restart_count: number;
  restart_streak: number;
}

/** Since 0009: restart and health events, the last 200 per machine. */
export interface WorkloadEventsTable {
  id: Generated<number>;
  machine_id: string;
  /** JSON WorkloadEvent without `at`. */
  event: string;
  at: string;
}

/** Since 0010: named persistent disks; machine_id is the one machine that holds it. */
export interface VolumesTable {
  id: string;
  name: string;
  size_mib: number;
  created_at: string;
  machine_id: string | null;
}

export interface Database {
  machines: MachinesTable;
  machine_events: MachineEventsTable;
  api_keys: ApiKeysTable;
  network_slots: NetworkSlotsTable;
  exposed_ports: ExposedPortsTable;
  snapshots: SnapshotsTable;
  machine_supervision: MachineSupervisionTable;
  workload_events: WorkloadEventsTable;
  volumes: VolumesTable;
}
