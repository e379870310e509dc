/**
 * Machines and their status history. Status changes go through `transition`, a conditional update
 * (`WHERE status IN (...)`) inside a transaction with the history row, so two concurrent requests
 * cannot both win the same transition and every change is timestamped.
 */
import { sql, type Kysely, type Selectable, type Updateable } from "kysely";
import type { Demand, Usage } from "../core/capacity.js";
import { HyperfleetError, storedErrorCode } from "../core/errors.js";
import { isMachineStatus, LIVE_STATUSES, type MachineStatus } from "../core/machine-state.js";
import type { Database, MachinesTable } from "./schema.js";
import type { ErrorRef, ImagePullState, ImageRunConfig, MachineNetwork, MachinePatch, MachineRecord, NewMachine } from "../core/machine.js";

export type Clock = () => Date;

/**
 * Admission check run inside a transition's transaction: given the machine and what the machines
 * holding a VMM (LIVE_STATUSES, itself excluded) use, returns the error that refuses it, or null.
 */
export type Admit = (self: Demand, others: Usage) => HyperfleetError | null;

export class MachineRepository {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly now: Clock = () => new Date(),
  ) {}

  /** Inserts a machine in status `created`; a taken name is MACHINE_ALREADY_EXISTS. */
  async insert(m: NewMachine): Promise<MachineRecord> {
    const at = this.now().toISOString();
    const row: Selectable<MachinesTable> = {
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
      image_digest: null,
      image_config: null,
      image_size_mib: m.imageSizeMib ?? null,
      image_pull: null,
      cmd: jsonOrNull(m.cmd),
      entrypoint: jsonOrNull(m.entrypoint),
      workdir: m.workdir ?? null,
      user: m.user ?? null,
    };
    try {
      await this.db.transaction().execute(async (trx) => {
        await trx.insertInto("machines").values(row).execute();
        await trx
          .insertInto("machine_events")
          .values({ machine_id: m.id, from_status: null, to_status: "created", reason: null, at })
          .execute();
      });
    } catch (e) {
      if (e instanceof Error && /UNIQUE constraint failed: machines\.name/.test(e.message)) {
        throw new HyperfleetError("MACHINE_ALREADY_EXISTS", `a machine named '${m.name}' already exists`, {
          cause: e,
          details: { field: "name" },
        });
      }
      throw e;
    }
    return toRecord(row);
  }

  async get(id: string): Promise<MachineRecord | undefined> {
    const row = await this.db.selectFrom("machines").selectAll().where("id", "=", id).executeTakeFirst();
    return row && toRecord(row);
  }

  /** All machines (optionally of some statuses), oldest first: ULID ids sort by creation time. */
  async list(filter: { status?: readonly MachineStatus[] } = {}): Promise<MachineRecord[]> {
    let q = this.db.selectFrom("machines").selectAll();
    if (filter.status !== undefined) q = q.where("status", "in", [...filter.status]);
    const rows = await q.orderBy("id").execute();
    return rows.map(toRecord);
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
      return toRecord(row);
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
    return row && toRecord(row);
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

function toRecord(r: Selectable<MachinesTable>): MachineRecord {
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
    exposedPorts: [],
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
  };
}
