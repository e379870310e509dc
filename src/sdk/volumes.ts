/** Volumes (docs/agents.md "Volumes"): named persistent disks machines mount; one writer at a time. */
import type { CreateVolumeBody, VolumeJson } from "../contract/volume.js";
import { attempt, type Result } from "../core/result.js";
import type { CallOptions, Transport } from "./transport.js";

export class Volumes {
  constructor(private readonly t: Transport) {}

  /** VOLUME_ALREADY_EXISTS for a taken name. */
  create(body: CreateVolumeBody, o: CallOptions = {}): Promise<Result<VolumeJson>> {
    return attempt(() => this.t.json<VolumeJson>({ ...o, method: "POST", path: "/volumes", body }));
  }

  list(o: CallOptions = {}): Promise<Result<VolumeJson[]>> {
    return attempt(() => this.t.json<VolumeJson[]>({ ...o, method: "GET", path: "/volumes" }));
  }

  /** By `vol_...` id or name; VOLUME_NOT_FOUND when there is none. */
  get(ref: string, o: CallOptions = {}): Promise<Result<VolumeJson>> {
    return attempt(() => this.t.json<VolumeJson>({ ...o, method: "GET", path: `/volumes/${encodeURIComponent(ref)}` }));
  }

  /** VOLUME_IN_USE while a machine holds it; its data goes with it. */
  delete(ref: string, o: CallOptions = {}): Promise<Result<void>> {
    return attempt(async () => {
      await this.t.request({ ...o, method: "DELETE", path: `/volumes/${encodeURIComponent(ref)}` });
    });
  }
}
