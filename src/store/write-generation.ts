/**
 * A count of the statements that changed the database through this store, so a reader can keep
 * what it read until the next write (ProxyTargetRepository: the proxy's per-request lookup).
 *
 * A Kysely plugin sees every statement's result, raw SQL and transactions included; the SQLite
 * driver gives `numAffectedRows` to every statement that is not a reader. The count moves after the
 * statement ran, and the store has one connection that a transaction holds until it ends (Kysely's
 * SQLite driver serialises on it), so a reader that notes the count before its own query and keeps
 * the answer under that count never keeps data older than the count says. Counting every write,
 * not only those to one table, errs on the side of reading again.
 */
import type { KyselyPlugin, PluginTransformQueryArgs, PluginTransformResultArgs, QueryResult, RootOperationNode, UnknownRow } from "kysely";

export class WriteGeneration implements KyselyPlugin {
  private n = 0;

  get value(): number {
    return this.n;
  }

  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    return args.node;
  }

  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    if (args.result.numAffectedRows !== undefined) this.n++;
    return args.result;
  }
}
