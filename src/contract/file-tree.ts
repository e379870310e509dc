/** Directories and streamed transfers: list, mkdir, rename, raw and tar download and upload. */
import { Type, type Static } from "@sinclair/typebox";
import { GuestPath } from "./common.js";

const FileType = Type.Union([Type.Literal("file"), Type.Literal("directory"), Type.Literal("symlink"), Type.Literal("other")]);

/** Largest `limit` of a listing: entries are held in memory and sent as one JSON document. */
export const LIST_MAX = 100_000;

export const ListQuery = Type.Object(
  {
    path: GuestPath,
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: LIST_MAX, default: 10_000, description: "Most entries to return; `truncated` says there were more" })),
  },
  { additionalProperties: false },
);
export type ListQuery = Static<typeof ListQuery>;

export const DirEntrySchema = Type.Object({
  name: Type.String(),
  type: FileType,
  size: Type.Integer(),
  mode: Type.Integer({ description: "Full st_mode (of the entry itself: symlinks are not followed)" }),
  permissions: Type.String({ description: "Permission bits in octal, e.g. \"0644\"" }),
  uid: Type.Integer(),
  gid: Type.Integer(),
  mtime: Type.String({ description: "ISO-8601" }),
  target: Type.Optional(Type.String({ description: "A symlink's target, as stored" })),
});
export type DirEntryJson = Static<typeof DirEntrySchema>;

export const ListResponse = Type.Object({
  path: Type.String(),
  entries: Type.Array(DirEntrySchema, { description: "Sorted by name; `.` and `..` left out" }),
  truncated: Type.Boolean(),
});
export type ListResponse = Static<typeof ListResponse>;

const Mode = Type.Union([Type.Integer({ minimum: 0, maximum: 0o7777 }), Type.String({ pattern: "^0?[0-7]{3,4}$" })], {
  description: "Permission bits: a number (493) or an octal string (\"0755\")",
});

export const MkdirBody = Type.Object(
  {
    path: GuestPath,
    mode: Type.Optional(Mode),
    parents: Type.Optional(Type.Boolean({ default: true, description: "Create missing parents; an existing directory is then no error (mkdir -p)" })),
  },
  { additionalProperties: false },
);
export type MkdirBody = Static<typeof MkdirBody>;

export const RenameBody = Type.Object(
  {
    from: GuestPath,
    to: GuestPath,
    overwrite: Type.Optional(Type.Boolean({ default: false, description: "Replace an existing `to` (rename(2)); else 409 FILE_ALREADY_EXISTS" })),
  },
  { additionalProperties: false },
);
export type RenameBody = Static<typeof RenameBody>;

export const DownloadQuery = Type.Object(
  {
    path: GuestPath,
    format: Type.Optional(Type.Union([Type.Literal("tar")], { description: "`tar`: the file or directory tree as a tar stream (application/x-tar)" })),
  },
  { additionalProperties: false },
);
export type DownloadQuery = Static<typeof DownloadQuery>;

export const StreamUploadQuery = Type.Object(
  {
    path: GuestPath,
    mode: Type.Optional(Type.String({ pattern: "^0?[0-7]{3,4}$", description: "Permission bits in octal, default 0644 (raw uploads)" })),
    format: Type.Optional(Type.Union([Type.Literal("tar")], { description: "`tar`: unpack the body (a tar archive) into the directory `path`" })),
  },
  { additionalProperties: false },
);
export type StreamUploadQuery = Static<typeof StreamUploadQuery>;

export const StreamUploadResponse = Type.Object({ path: Type.String(), size: Type.Integer({ description: "Bytes written" }) });

export const TarUploadResponse = Type.Object({
  path: Type.String(),
  files: Type.Integer(),
  directories: Type.Integer(),
  symlinks: Type.Integer(),
  bytes: Type.Integer(),
  skipped: Type.Integer({ description: "Entries not created: hardlinks, devices, FIFOs" }),
});
export type TarUploadResponse = Static<typeof TarUploadResponse>;
