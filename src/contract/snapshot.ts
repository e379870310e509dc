/** Snapshots on the wire (docs/adr/0009). */
import { Type, type Static } from "@sinclair/typebox";
import { Nullable } from "./common.js";

export const SnapshotSchema = Type.Object(
  {
    id: Type.String({ description: "`snap_<ULID>`", examples: ["snap_01J9Z6Y8W2V4T0S5R3Q1P7N9M8"] }),
    machine_id: Type.String({ description: "The machine it was taken from (it may have been deleted since)" }),
    size_bytes: Type.Integer({ description: "Disk space its files take (memory, device state, frozen root disk)" }),
    created_at: Type.String({ description: "ISO-8601" }),
    vcpu_count: Type.Integer({ description: "Machines created from it have its source's shape" }),
    mem_size_mib: Type.Integer(),
    image: Nullable(Type.String({ description: "The source's image" })),
    network: Type.Boolean({ description: "The source had a network, so machines created from it have one" }),
  },
  { $id: "Snapshot" },
);
export type SnapshotJson = Static<typeof SnapshotSchema>;

/** Any string: an id that cannot exist is answered like an unknown one (404 SNAPSHOT_NOT_FOUND). */
export const SnapshotIdParams = Type.Object({
  id: Type.String({ minLength: 1, maxLength: 64, description: "Snapshot id, `snap_<ULID>`" }),
});
export type SnapshotIdParams = Static<typeof SnapshotIdParams>;
