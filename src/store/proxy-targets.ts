/**
 * What the proxy needs of a machine (src/proxy looks machines up through its ProxyDirectory port;
 * the daemon adapts this to it), and the machine's access token, which no MachineRecord carries so
 * no view or log of a machine can leak it.
 *
 * Lookups are kept until the store's next write (write-generation.ts): the proxy asks on every
 * request, and a query there cost 0.3-0.4 ms of a request's latency (bench:proxy). Any write, a
 * status change or a rotated token among them, drops them all, so the proxy never routes on, or
 * accepts a token from, a row older than the last write.
 */
import type { Kysely, Selectable } from "kysely";
import type { ProxiedService } from "../core/machine.js";
import type { Database, MachinesTable } from "./schema.js";

export interface ProxyTargetRow {
  id: string;
  name: string;
  status: string;
  /** The machine's `network.ip`; null without a network. */
  ip: string | null;
  services: ProxiedService[];
  token: string | null;
}

type Row = Pick<Selectable<MachinesTable>, "id" | "name" | "status" | "network" | "services" | "access_token">;
const COLUMNS = ["id", "name", "status", "network", "services", "access_token"] as const;

/** Bounds what lookups of machines that exist can keep between writes; misses are never kept. */
const MAX_KEPT = 4096;

export class ProxyTargetRepository {
  private readonly kept = new Map<string, readonly ProxyTargetRow[]>();
  private keptAt = -1;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly writes: { readonly value: number },
  ) {}

  /** A kept answer synchronously, otherwise the query's promise. */
  byId(id: string): ProxyTargetRow | undefined | Promise<ProxyTargetRow | undefined> {
    const rows = this.lookup(`id:${id}`, async () => {
      const r = await this.db.selectFrom("machines").select(COLUMNS).where("id", "=", id).executeTakeFirst();
      return r ? [targetOf(r)] : [];
    });
    return rows instanceof Promise ? rows.then((r) => r[0]) : rows[0];
  }

  /** DNS labels are case-insensitive: every machine whose name equals `name` ignoring ASCII case. */
  byName(name: string): readonly ProxyTargetRow[] | Promise<readonly ProxyTargetRow[]> {
    const lower = name.toLowerCase();
    return this.lookup(`name:${lower}`, async () => {
      const rows = await this.db
        .selectFrom("machines")
        .select(COLUMNS)
        .where((eb) => eb(eb.fn("lower", ["name"]), "=", lower))
        .limit(2)
        .execute();
      return rows.map(targetOf);
    });
  }

  private lookup(key: string, read: () => Promise<readonly ProxyTargetRow[]>): readonly ProxyTargetRow[] | Promise<readonly ProxyTargetRow[]> {
    // The count before the query: a write that lands while it runs leaves the answer already stale.
    const at = this.writes.value;
    if (at !== this.keptAt) {
      this.kept.clear();
      this.keptAt = at;
    }
    const hit = this.kept.get(key);
    if (hit !== undefined) return hit;
    return read().then((rows) => {
      if (rows.length > 0 && this.keptAt === at) {
        if (this.kept.size >= MAX_KEPT) this.kept.clear();
        this.kept.set(key, rows);
      }
      return rows;
    });
  }

  /** undefined: no such machine. */
  async token(id: string): Promise<string | null | undefined> {
    const r = await this.db.selectFrom("machines").select("access_token").where("id", "=", id).executeTakeFirst();
    return r?.access_token;
  }

  /** false: no such machine. */
  async setToken(id: string, token: string): Promise<boolean> {
    const r = await this.db.updateTable("machines").set({ access_token: token }).where("id", "=", id).executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }
}

function targetOf(r: Row): ProxyTargetRow {
  const net = r.network === null ? null : (JSON.parse(r.network) as { ip?: unknown; slot?: unknown });
  const ip = net !== null && typeof net.slot === "number" && typeof net.ip === "string" ? net.ip : null;
  return { id: r.id, name: r.name, status: r.status, ip, services: JSON.parse(r.services) as ProxiedService[], token: r.access_token };
}
