/**
 * What the proxy needs of a machine, read in one query per request (src/proxy looks machines up
 * through its ProxyDirectory port; the daemon adapts this to it), and the machine's access token,
 * which no MachineRecord carries so no view or log of a machine can leak it.
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

export class ProxyTargetRepository {
  constructor(private readonly db: Kysely<Database>) {}

  async byId(id: string): Promise<ProxyTargetRow | undefined> {
    const r = await this.db.selectFrom("machines").select(COLUMNS).where("id", "=", id).executeTakeFirst();
    return r && targetOf(r);
  }

  /** DNS labels are case-insensitive: every machine whose name equals `name` ignoring ASCII case. */
  async byName(name: string): Promise<ProxyTargetRow[]> {
    const rows = await this.db
      .selectFrom("machines")
      .select(COLUMNS)
      .where((eb) => eb(eb.fn("lower", ["name"]), "=", name.toLowerCase()))
      .limit(2)
      .execute();
    return rows.map(targetOf);
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
