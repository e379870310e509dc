/** The image cache: cached images, pull requests, and the credentials both kinds of pull accept. */
import { Type, type Static } from "@sinclair/typebox";
import { Nullable } from "./common.js";

/** Shape only; the daemon checks the reference grammar (400 INVALID_ARGUMENT, field `image`). */
export const imageRefString = (description: string) => Type.String({ minLength: 1, maxLength: 512, examples: ["alpine:latest"], description });

/**
 * `{username, password}` or `{token}`: one object with optional fields rather than a union, so a
 * missing field is reported by name (the route checks the combination).
 */
export const RegistryAuth = Type.Object(
  {
    username: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    password: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
    token: Type.Optional(Type.String({ minLength: 1, maxLength: 8192, description: "An identity (refresh) token instead of username/password" })),
  },
  { additionalProperties: false, description: "Registry credentials for this pull only: never stored, logged or returned" },
);
export type RegistryAuth = Static<typeof RegistryAuth>;

export const PullImageBody = Type.Object(
  {
    image: imageRefString("OCI image reference"),
    registry_auth: Type.Optional(RegistryAuth),
    image_size_mib: Type.Optional(Type.Integer({ minimum: 64, maximum: 1048576, description: "Build the disk for machines that will ask for this size" })),
  },
  { additionalProperties: false },
);
export type PullImageBody = Static<typeof PullImageBody>;

export const ImageRefParams = Type.Object({
  ref: Type.String({ minLength: 1, maxLength: 600, description: "URL-encoded reference (`127.0.0.1%3A5000%2Fapp%3A1`) or manifest digest (`sha256:...`)" }),
});
export type ImageRefParams = Static<typeof ImageRefParams>;

const NullableString = Nullable(Type.String());

export const ImageSchema = Type.Object(
  {
    refs: Type.Array(Type.String(), { description: "Normalized tag references that lead to this image" }),
    digest: Type.String({ description: "linux/amd64 manifest digest" }),
    resolved_ref: Type.String(),
    size_bytes: Type.Integer({ description: "Host bytes: root disk plus blobs" }),
    disk_size_mib: Type.Integer(),
    in_use: Type.Boolean({ description: "A machine uses it: it is neither evicted nor deletable" }),
    created_at: Type.String(),
    last_used_at: Type.String(),
    platform: Type.Object({ os: Type.String(), architecture: Type.String(), variant: NullableString }),
    config: Type.Object({
      entrypoint: Type.Array(Type.String()),
      cmd: Type.Array(Type.String()),
      env: Type.Record(Type.String(), Type.String()),
      working_dir: NullableString,
      user: NullableString,
      exposed_ports: Type.Array(Type.Object({ port: Type.Integer(), protocol: Type.String() })),
    }),
  },
  { $id: "Image" },
);
export type ImageJson = Static<typeof ImageSchema>;

/** One progress line of `POST /images/pull` with `Accept: application/x-ndjson`. */
export interface PullProgressJson {
  phase: string;
  layers_done: number;
  layers_total: number;
  bytes_done: number;
  bytes_total: number;
}
