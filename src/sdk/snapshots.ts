/** Snapshots (docs/snapshots.md): take one of a running machine, list, get, delete. */
import type { SnapshotJson } from "../contract/snapshot.js";
import { attempt, type Result } from "../core/result.js";
import { machinePath } from "./paths.js";
import type { CallOptions, Transport } from "./transport.js";

export class Snapshots {
  constructor(private readonly t: Transport) {}

  /** Saves a running or paused machine; it goes on as it was. Create machines from it with `snapshot`. */
  create(machineId: string, o: CallOptions = {}): Promise<Result<SnapshotJson>> {
    return attempt(() => this.t.json<SnapshotJson>({ timeoutMs: 120_000, ...o, method: "POST", path: machinePath(machineId, "/snapshots") }));
  }

  list(o: CallOptions = {}): Promise<Result<SnapshotJson[]>> {
    return attempt(() => this.t.json<SnapshotJson[]>({ ...o, method: "GET", path: "/snapshots" }));
  }

  get(id: string, o: CallOptions = {}): Promise<Result<SnapshotJson>> {
    return attempt(() => this.t.json<SnapshotJson>({ ...o, method: "GET", path: `/snapshots/${encodeURIComponent(id)}` }));
  }

  /** SNAPSHOT_IN_USE while machines created from it exist. */
  delete(id: string, o: CallOptions = {}): Promise<Result<void>> {
    return attempt(async () => {
      await this.t.request({ ...o, method: "DELETE", path: `/snapshots/${encodeURIComponent(id)}` });
    });
  }
}
