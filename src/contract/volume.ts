/** Volumes on the wire (docs/agents.md "Volumes"). */
import { Type, type Static } from "@sinclair/typebox";
import { Nullable } from "./common.js";

const VOLUME_NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$";
const VOLUME_NAME_MESSAGE = "must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit";

/** The schema's bound; the daemon's own (HYPERFLEET_VOLUME_MAX_SIZE_MIB) may be lower. */
export const VOLUME_SIZE_MIN_MIB = 16;
export const VOLUME_SIZE_MAX_MIB = 16_777_216;

export const CreateVolumeBody = Type.Object(
  {
    name: Type.String({ pattern: VOLUME_NAME_PATTERN, errorMessage: VOLUME_NAME_MESSAGE, description: "Unique name, what machines name it by", examples: ["agent-state"] }),
    size_mib: Type.Integer({
      minimum: VOLUME_SIZE_MIN_MIB,
      maximum: VOLUME_SIZE_MAX_MIB,
      description: "Size in MiB (at least 16; at most HYPERFLEET_VOLUME_MAX_SIZE_MIB). The file is sparse: it takes what the guest writes.",
      examples: [1024],
    }),
  },
  { additionalProperties: false },
);
export type CreateVolumeBody = Static<typeof CreateVolumeBody>;

export const VolumeSchema = Type.Object(
  {
    id: Type.String({ description: "`vol_<ULID>`" }),
    name: Type.String(),
    size_mib: Type.Integer(),
    created_at: Type.String({ description: "ISO-8601" }),
    machine_id: Nullable(Type.String({ description: "The machine that holds it (from its create to its delete); null: free" })),
  },
  { $id: "Volume" },
);
export type VolumeJson = Static<typeof VolumeSchema>;

export const VolumeRefParams = Type.Object({
  id_or_name: Type.String({ minLength: 1, maxLength: 64, description: "`vol_<ULID>` or the volume's name" }),
});
export type VolumeRefParams = Static<typeof VolumeRefParams>;

/** One entry of a create request's `volumes`. */
export const VolumeMountRequest = Type.Object(
  {
    name: Type.String({ pattern: VOLUME_NAME_PATTERN, errorMessage: VOLUME_NAME_MESSAGE, description: "The volume (POST /volumes)" }),
    mount: Type.String({
      minLength: 2,
      maxLength: 1024,
      pattern: "^/[^\\u0000]*$",
      description: "Where the guest mounts it: absolute, not `/`, no `.` or `..` component; created if missing",
      examples: ["/data"],
    }),
    read_only: Type.Optional(Type.Boolean({ default: false, description: "Mounted read-only (writes fail with EROFS); the machine still holds it" })),
  },
  { additionalProperties: false },
);
