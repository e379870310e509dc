/** File transfer to and from a running machine. */
import { Type, type Static } from "@sinclair/typebox";
import { GuestPath } from "./common.js";

export const UploadBody = Type.Object(
  {
    path: GuestPath,
    content: Type.String({ description: "File content, base64", examples: ["SGVsbG8gV29ybGQh"] }),
    mode: Type.Optional(
      Type.Union([Type.Integer({ minimum: 0, maximum: 0o7777 }), Type.String({ pattern: "^0?[0-7]{3,4}$" })], {
        description: "Permission bits: a number (420) or an octal string (\"0644\"); default 0644",
      }),
    ),
  },
  { additionalProperties: false },
);
export type UploadBody = Static<typeof UploadBody>;

export const PathQuery = Type.Object({ path: GuestPath }, { additionalProperties: false });
export type PathQuery = Static<typeof PathQuery>;

export const DeleteFileQuery = Type.Object(
  { path: GuestPath, recursive: Type.Optional(Type.Boolean({ default: false, description: "Remove a directory and its contents" })) },
  { additionalProperties: false },
);
export type DeleteFileQuery = Static<typeof DeleteFileQuery>;

export const UploadResponse = Type.Object({ path: Type.String(), size: Type.Integer() });

export const DownloadResponse = Type.Object({
  path: Type.String(),
  size: Type.Integer(),
  content: Type.String({ description: "base64" }),
});

export const StatResponse = Type.Object({
  path: Type.String(),
  type: Type.Union([Type.Literal("file"), Type.Literal("directory"), Type.Literal("symlink"), Type.Literal("other")]),
  size: Type.Integer(),
  mode: Type.Integer({ description: "Full st_mode" }),
  permissions: Type.String({ description: "Permission bits in octal, e.g. \"0644\"" }),
  uid: Type.Integer(),
  gid: Type.Integer(),
  mtime: Type.String({ description: "ISO-8601" }),
});
export type UploadResponse = Static<typeof UploadResponse>;
export type DownloadResponse = Static<typeof DownloadResponse>;
export type StatResponse = Static<typeof StatResponse>;
