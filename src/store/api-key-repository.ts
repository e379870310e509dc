/**
 * Hashed API keys. Only sha256 hex digests are stored; comparing them is the auth layer's job.
 */
import type { Kysely } from "kysely";
import type { Database } from "./schema.js";

export interface StoredApiKey {
  id: string;
  keyHash: string;
  source: string;
  createdAt: string;
}

export class ApiKeyRepository {
  constructor(private readonly db: Kysely<Database>) {}

  async list(): Promise<StoredApiKey[]> {
    const rows = await this.db.selectFrom("api_keys").selectAll().orderBy("created_at").execute();
    return rows.map((r) => ({ id: r.id, keyHash: r.key_hash, source: r.source, createdAt: r.created_at }));
  }

  async insert(k: { id: string; keyHash: string; source: string; createdAt: Date }): Promise<void> {
    await this.db
      .insertInto("api_keys")
      .values({ id: k.id, key_hash: k.keyHash, source: k.source, created_at: k.createdAt.toISOString() })
      .execute();
  }
}
