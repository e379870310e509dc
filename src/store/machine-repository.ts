/**
 * Machines and their status history. Status changes go through `transition`, a conditional update
 * (`WHERE status IN (...)`) inside a transaction with the history row, so two concurrent requests
 * cannot both win the same transition and every change is timestamped.
 */
import { sql, type Kysely, type Selectable, type Updateable } from "kysely";
import type { Demand, Usage } from "../core/capacity.js";
import { HyperfleetError, storedErrorCode } from "../core/errors.js";
import { isMachineStatus, LIVE_STATUSES, type MachineStatus } from "../core/machine-state.js";
import type { Database, ExposedPortsTable, MachinesTable } from "./schema.js";
import type { VmmKind } from "../core/ports/vmm-driver.js";
import { RESTORE_SOURCES, VMM_KINDS, type ErrorRef, type ExposedPort, type ImagePullState, type ImageRunConfig, type MachineNetwork, type MachinePatch, type MachineRecord, type NewMachine, type PortProtocol, type ProxiedService, type RestoreSource } from "../core/machine.js";
import { claimSlot, type SlotPicker } from "./network-slot-repository.js";
import { claimVolumes } from "./volume-repository.js";
import type { VolumeAttachment } from "../core/volume.js";

export type Clock = () => Date;

/**
 * Admission check run inside a transition's transaction: given the machine and what the machines
 * holding a VMM (LIVE_STATUSES, itself excluded) use, returns the error that refuses it, or null.
 */
export type Admit = (self: Demand, others: Usage) => HyperfleetError | null;

/**
 * What a machine with a network claims in its create transaction (docs/adr/0008): the rules are
 * the caller's (src/network); the store makes reading what is taken and taking it one transaction.
 */
export interface NetworkClaim {
  /** The slot among the free ones (`nextFreeSlot`); undefined when none is left. */
  pickSlot: SlotPicker;
  /** The network the machine records, from its slot. */
  network(slot: number): MachineNetwork;
  /**
   * The machine's exposed ports, given those every other machine holds; may probe the host (the
   * write lock is held meanwhile, so keep it short). Throws to refuse the machine.
   */
  ports(held: readonly ExposedPort[]): Promise<ExposedPort[]>;
}

export class MachineRepository {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly now: Clock = () => new Date(),
  ) {}

  /**
   * Inserts a machine in status `created`; a taken name is MACHINE_ALREADY_EXISTS. With `claim`,
   * its network slot and exposed ports are taken in the same write transaction (BEGIN IMMEDIATE:
   * no other writer reads the same free slots and ports meanwhile), and `m.network` is replaced by
   * the claimed one. If anything fails, nothing is left behind.
   */
  async insert(m: NewMachine, claim?: NetworkClaim): Promise<MachineRecord> {
    const at = this.now().toISOString();
    const row = newRow(m, at);
    const event = { machine_id: m.id, from_status: null, to_status: "created", reason: null, at };
    try {
      if (claim === undefined) {
        await this.db.transaction().execute(async (trx) => {
          await trx.insertInto("machines").values(row).execute();
          await trx.insertInto("machine_events").values(event).execute();
          await claimVolumes(trx, m.id, m.volumes ?? []);
        });
        return toRecord(row, []);
      }
      return await this.db.connection().execute(async (conn) => {
        await sql`BEGIN IMMEDIATE`.execute(conn);
        try {
          const lease = await claimSlotAfter(conn, row, event, claim.pickSlot, at);
          await claimVolumes(conn, m.id, m.volumes ?? []);
          const network = claim.network(lease.slot);
          await conn.updateTable("machines").set({ network: JSON.stringify(network) }).where("id", "=", m.id).execute();
          const held = await conn.selectFrom("exposed_ports").selectAll().execute();
          const ports = await claim.ports(held.map(portOf));
          if (ports.length > 0) await conn.insertInto("exposed_ports").values(ports.map((p) => portRow(m.id, p))).execute();
          await sql`COMMIT`.execute(conn);
          return toRecord({ ...row, network: JSON.stringify(network) }, ports);
        } catch (e) {
          await sql`ROLLBACK`.execute(conn);
          throw e;
        }
      });
    } catch (e) {
      if (e instanceof Error && /UNIQUE constraint failed: machines\.name/.test(e.message)) {
        throw new HyperfleetError("MACHINE_ALREADY_EXISTS", `a machine named '${m.name}' already exists`, {
          cause: e,
          details: { field: "name" },
        });
      }
      // Only a writer that skipped the transaction's check could get here: the constraint is the backstop.
      if (e instanceof Error && /UNIQUE constraint failed: exposed_ports\./.test(e.message)) {
        throw new HyperfleetError("PORT_UNAVAILABLE", "an exposed port was taken by another machine meanwhile; retry", { cause: e, details: { field: "exposed_ports" } });
      }
      throw e;
    }
  }

  async get(id: string): Promise<MachineRecord | undefined> {
    const row = await this.db.selectFrom("machines").selectAll().where("id", "=", id).executeTakeFirst();
    return row && toRecord(row, await portsOf(this.db, id));
  }

  /** All machines (optionally of some statuses), oldest first: ULID ids sort by creation time. */
  async list(filter: { status?: readonly MachineStatus[] } = {}): Promise<MachineRecord[]> {
    let q = this.db.selectFrom("machines").selectAll();
    if (filter.status !== undefined) q = q.where("status", "in", [...filter.status]);
    const rows = await q.orderBy("id").execute();
    // One query for every machine's ports, not one per machine (GET /machines with 1000 machines).
    const byMachine = new Map<string, ExposedPort[]>();
    const ports = await this.db.selectFrom("exposed_ports").selectAll().orderBy("protocol").orderBy("host_port").orderBy("host_ip").execute();
    for (const p of ports) {
      let list = byMachine.get(p.machine_id);
      if (list === undefined) byMachine.set(p.machine_id, (list = []));
      list.push(portOf(p));
    }
    return rows.map((r) => toRecord(r, byMachine.get(r.id) ?? []));
  }

  /**
   * Moves a machine from one of `from` to `to`, applying `patch` in the same statement. Returns the
   * updated record, or undefined when the machine is gone or no longer in one of `from` (a
   * concurrent change won); the caller re-reads and reports the current status.
   */
  async transition(
    id: string,
    from: readonly MachineStatus[],
    to: MachineStatus,
    patch: MachinePatch = {},
    reason: string | null = null,
    admit?: Admit,
  ): Promise<MachineRecord | undefined> {
    const at = this.now().toISOString();
    const set: Updateable<MachinesTable> = {
      ...patchColumns(patch),
      status: to,
      updated_at: at,
      status_changed_at: at,
    };
    if (to === "running" && patch.startedAt === undefined) set.started_at = at;
    if ((to === "stopped" || to === "failed") && patch.stoppedAt === undefined) set.stopped_at = at;
    // Kysely's SQLite driver runs one transaction at a time on its single connection, so the read,
    // the admission sum and the conditional update below cannot interleave with another transition.
    return this.db.transaction().execute(async (trx) => {
      const cur = await trx.selectFrom("machines").select(["status", "vcpu_count", "mem_size_mib"]).where("id", "=", id).executeTakeFirst();
      if (cur === undefined || !(from as readonly string[]).includes(cur.status)) return undefined;
      if (admit) {
        const used = await trx
          .selectFrom("machines")
          .select((eb) => [eb.fn.countAll<number>().as("machines"), eb.fn.sum<number | null>("mem_size_mib").as("mem"), eb.fn.sum<number | null>("vcpu_count").as("vcpus")])
          .where("status", "in", [...LIVE_STATUSES])
          .where("id", "!=", id)
          .executeTakeFirstOrThrow();
        const refused = admit(
          { vcpuCount: cur.vcpu_count, memSizeMib: cur.mem_size_mib },
          { machines: Number(used.machines), memSizeMib: Number(used.mem ?? 0), vcpus: Number(used.vcpus ?? 0) },
        );
        if (refused) throw refused;
      }
      const row = await trx
        .updateTable("machines")
        .set(set)
        .where("id", "=", id)
        .where("status", "=", cur.status)
        .returningAll()
        .executeTakeFirstOrThrow();
      await trx
        .insertInto("machine_events")
        .values({ machine_id: id, from_status: cur.status, to_status: to, reason, at })
        .execute();
      return toRecord(row, await portsOf(trx, id));
    });
  }

  /** Updates fields that are not the status (e.g. the pid of an adopted VMM). */
  async update(id: string, patch: MachinePatch): Promise<MachineRecord | undefined> {
    const row = await this.db
      .updateTable("machines")
      .set({ ...patchColumns(patch), updated_at: this.now().toISOString() })
      .where("id", "=", id)
      .returningAll()
      .executeTakeFirst();
    return row && toRecord(row, await portsOf(this.db, id));
  }

  /** The machine's secrets as sealed in the store (name -> sealed value); undefined: no such machine. */
  async sealedSecrets(id: string): Promise<Record<string, string> | undefined> {
    const row = await this.db.selectFrom("machines").select("secrets").where("id", "=", id).executeTakeFirst();
    return row && (JSON.parse(row.secrets) as Record<string, string>);
  }

  /** Replaces the machine's sealed secrets (a rotation); undefined: no such machine. */
  async setSecrets(id: string, sealed: Record<string, string>): Promise<MachineRecord | undefined> {
    const row = await this.db
      .updateTable("machines")
      .set({ secrets: JSON.stringify(sealed), updated_at: this.now().toISOString() })
      .where("id", "=", id)
      .returningAll()
      .executeTakeFirst();
    return row && toRecord(row, await portsOf(this.db, id));
  }

  /**
   * Removes the machine and its history. The row held the machine's env (users' API keys): with
   * `secure_delete` (set by the store) SQLite zeroes the freed bytes, and the checkpoint copies the
   * zeroed pages into the database and truncates the WAL, which still held earlier copies of the row.
   */
  async delete(id: string): Promise<boolean> {
    const r = await this.db.deleteFrom("machines").where("id", "=", id).executeTakeFirst();
    if (r.numDeletedRows > 0n) await sql`PRAGMA wal_checkpoint(TRUNCATE)`.execute(this.db);
    return r.numDeletedRows > 0n;
  }
}

function newRow(m: NewMachine, at: string): Selectable<MachinesTable> {
  return {
    id: m.id,
    name: m.name,
    status: "created",
    vcpu_count: m.vcpuCount,
    mem_size_mib: m.memSizeMib,
    image_ref: m.imageRef,
    kernel_image_path: m.kernelImagePath,
    initrd_path: m.initrdPath,
    kernel_args: m.kernelArgs,
    rootfs_path: m.rootfsPath,
    run_dir: m.runDir,
    pid: null,
    network: m.network === null ? null : JSON.stringify(m.network),
    env: JSON.stringify(m.env),
    metadata: JSON.stringify(m.metadata),
    last_error_code: null,
    last_error_message: null,
    created_at: at,
    updated_at: at,
    status_changed_at: at,
    started_at: null,
    stopped_at: null,
    image_digest: m.imageDigest ?? null,
    image_config: jsonOrNull(m.imageConfig),
    image_size_mib: m.imageSizeMib ?? null,
    image_pull: null,
    cmd: jsonOrNull(m.cmd),
    entrypoint: jsonOrNull(m.entrypoint),
    workdir: m.workdir ?? null,
    user: m.user ?? null,
    snapshot_id: m.snapshotId ?? null,
    restore_from: m.restoreFrom ?? null,
    vmm: m.vmm,
    services: JSON.stringify(m.services ?? []),
    access_token: m.accessToken ?? null,
    secrets: JSON.stringify(m.sealedSecrets ?? {}),
    volumes: JSON.stringify(m.volumes ?? []),
  };
}

/** The machine and its `created` event first (a taken name fails before anything is probed), then its slot. */
async function claimSlotAfter(
  conn: Kysely<Database>,
  row: Selectable<MachinesTable>,
  event: { machine_id: string; from_status: null; to_status: string; reason: null; at: string },
  pick: SlotPicker,
  at: string,
) {
  await conn.insertInto("machines").values(row).execute();
  await conn.insertInto("machine_events").values(event).execute();
  return claimSlot(conn, row.id, pick, at);
}

/** A machine's exposed ports in their listed order (protocol, host port, host address). */
async function portsOf(db: Kysely<Database>, id: string): Promise<ExposedPort[]> {
  const rows = await db.selectFrom("exposed_ports").selectAll().where("machine_id", "=", id).orderBy("protocol").orderBy("host_port").orderBy("host_ip").execute();
  return rows.map(portOf);
}

function portOf(r: Selectable<ExposedPortsTable>): ExposedPort {
  return { protocol: r.protocol as PortProtocol, hostIp: r.host_ip, hostPort: r.host_port, guestPort: r.guest_port };
}

function portRow(machineId: string, p: ExposedPort): ExposedPortsTable {
  return { machine_id: machineId, protocol: p.protocol, host_ip: p.hostIp, host_port: p.hostPort, guest_port: p.guestPort };
}

function patchColumns(p: MachinePatch): Updateable<MachinesTable> {
  const set: Updateable<MachinesTable> = {};
  if (p.pid !== undefined) set.pid = p.pid;
  if (p.kernelImagePath !== undefined) set.kernel_image_path = p.kernelImagePath;
  if (p.initrdPath !== undefined) set.initrd_path = p.initrdPath;
  if (p.kernelArgs !== undefined) set.kernel_args = p.kernelArgs;
  if (p.rootfsPath !== undefined) set.rootfs_path = p.rootfsPath;
  if (p.startedAt !== undefined) set.started_at = p.startedAt;
  if (p.stoppedAt !== undefined) set.stopped_at = p.stoppedAt;
  if (p.imageDigest !== undefined) set.image_digest = p.imageDigest;
  if (p.imageConfig !== undefined) set.image_config = jsonOrNull(p.imageConfig);
  if (p.imagePull !== undefined) set.image_pull = jsonOrNull(p.imagePull);
  if (p.restoreFrom !== undefined) set.restore_from = p.restoreFrom;
  if (p.snapshotId !== undefined) set.snapshot_id = p.snapshotId;
  if (p.lastError !== undefined) {
    set.last_error_code = p.lastError?.code ?? null;
    set.last_error_message = p.lastError?.message ?? null;
  }
  return set;
}

function jsonOrNull(v: unknown): string | null {
  return v === null || v === undefined ? null : JSON.stringify(v);
}

function parseOrNull<T>(s: string | null): T | null {
  return s === null ? null : (JSON.parse(s) as T);
}

/**
 * The network column: JSON of a MachineNetwork. A value without a slot (written before networking
 * existed, when nothing set it) is no network.
 */
function networkOf(s: string | null): MachineNetwork | null {
  const v = parseOrNull<Partial<MachineNetwork>>(s);
  if (v === null || typeof v !== "object" || typeof v.slot !== "number") return null;
  return v as MachineNetwork;
}

/** The image_pull column: its error's code is checked like last_error_code. */
function pullOf(s: string | null): ImagePullState | null {
  const p = parseOrNull<ImagePullState>(s);
  if (p === null || p.error === null) return p;
  const error: ErrorRef = { code: storedErrorCode(String(p.error.code)), message: String(p.error.message) };
  return { ...p, error };
}

function asStatus(s: string): MachineStatus {
  // A status we do not know can only come from a newer daemon's database; refuse to guess.
  if (!isMachineStatus(s)) throw new HyperfleetError("INTERNAL", `unknown machine status '${s}' in the store`);
  return s;
}

function toRecord(r: Selectable<MachinesTable>, exposedPorts: ExposedPort[]): MachineRecord {
  return {
    id: r.id,
    name: r.name,
    status: asStatus(r.status),
    vcpuCount: r.vcpu_count,
    memSizeMib: r.mem_size_mib,
    imageRef: r.image_ref,
    kernelImagePath: r.kernel_image_path,
    initrdPath: r.initrd_path,
    kernelArgs: r.kernel_args,
    rootfsPath: r.rootfs_path,
    runDir: r.run_dir,
    pid: r.pid,
    network: networkOf(r.network),
    exposedPorts,
    env: JSON.parse(r.env) as Record<string, string>,
    metadata: JSON.parse(r.metadata) as Record<string, string>,
    lastError:
      r.last_error_code === null ? null : { code: storedErrorCode(r.last_error_code), message: r.last_error_message ?? "" },
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    statusChangedAt: r.status_changed_at,
    startedAt: r.started_at,
    stoppedAt: r.stopped_at,
    imageDigest: r.image_digest,
    imageConfig: parseOrNull<ImageRunConfig>(r.image_config),
    imageSizeMib: r.image_size_mib,
    imagePull: pullOf(r.image_pull),
    cmd: parseOrNull<string[]>(r.cmd),
    entrypoint: parseOrNull<string[]>(r.entrypoint),
    workdir: r.workdir,
    user: r.user,
    snapshotId: r.snapshot_id,
    restoreFrom: restoreFromOf(r.restore_from),
    vmm: vmmOf(r.vmm),
    services: JSON.parse(r.services) as ProxiedService[],
    secretNames: Object.keys(JSON.parse(r.secrets) as Record<string, string>).sort(),
    volumes: JSON.parse(r.volumes) as VolumeAttachment[],
  };
}

function vmmOf(s: string): VmmKind {
  // Only a newer daemon's database can hold another: refuse to guess which driver boots it.
  if (!(VMM_KINDS as readonly string[]).includes(s)) throw new HyperfleetError("INTERNAL", `unknown vmm '${s}' in the store`);
  return s as VmmKind;
}

function restoreFromOf(s: string | null): RestoreSource | null {
  if (s === null) return null;
  if (!(RESTORE_SOURCES as readonly string[]).includes(s)) throw new HyperfleetError("INTERNAL", `unknown restore_from '${s}' in the store`);
  return s as RestoreSource;
}
