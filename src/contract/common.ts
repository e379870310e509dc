/** Schema pieces shared by several routes. */
import { FormatRegistry, Type, type Static, type TSchema } from "@sinclair/typebox";
import { MACHINE_STATUSES } from "../core/machine-state.js";

/** OpenAPI 3.0 nullable (response schemas only: fast-json-stringify and Swagger understand it). */
export const Nullable = <T extends TSchema>(t: T) => Type.Unsafe<Static<T> | null>({ ...t, nullable: true });

export const MACHINE_ID_PATTERN = "^vm_[0-9A-HJKMNP-TV-Z]{26}$";

/**
 * `x-not-found`: a path id that does not match is answered with this code, as an unknown id is (Docker
 * and Fly answer 404 for both), not 400: "malformed" and "gone" are one answer to act on.
 */
export const MachineIdParams = Type.Object({
  id: Type.String({
    pattern: MACHINE_ID_PATTERN,
    description: "Machine id, `vm_<ULID>`; any other string is answered like an unknown id, 404 MACHINE_NOT_FOUND",
    examples: ["vm_01J9Z6Y8W2V4T0S5R3Q1P7N9M8"],
    "x-not-found": "MACHINE_NOT_FOUND",
  }),
});
export type MachineIdParams = Static<typeof MachineIdParams>;

export const MachineStatusSchema = Type.Union(
  MACHINE_STATUSES.map((s) => Type.Literal(s)),
  { description: "Lifecycle status" },
);

/** Environment variable names as POSIX shells accept them. */
export const ENV_NAME_PATTERN = "^[A-Za-z_][A-Za-z0-9_]*$";

export const EnvMap = Type.Record(Type.String({ pattern: ENV_NAME_PATTERN, maxLength: 256 }), Type.String({ maxLength: 65536 }), {
  additionalProperties: false,
  maxProperties: 256,
  description: "Environment variables (NAME -> value)",
});

/** Linux limits (NAME_MAX, PATH_MAX), in bytes: a longer path would fail in the guest anyway. */
export const NAME_MAX = 255;
export const PATH_MAX = 4096;

/** Absolute, no NUL (it cannot reach a C string in the guest), and within the kernel's byte limits. */
export function isGuestPath(s: string): boolean {
  if (!s.startsWith("/") || s.includes("\0") || Buffer.byteLength(s) >= PATH_MAX) return false;
  return s.split("/").every((c) => Buffer.byteLength(c) <= NAME_MAX);
}
FormatRegistry.Set("guest-path", isGuestPath);

export const GuestPath = Type.String({
  minLength: 1,
  maxLength: PATH_MAX,
  format: "guest-path",
  errorMessage: `must be an absolute path without NUL bytes, under ${PATH_MAX} bytes, each component at most ${NAME_MAX} bytes`,
  description: `Absolute path inside the guest (under ${PATH_MAX} bytes, each component at most ${NAME_MAX} bytes)`,
  examples: ["/tmp/hello.txt"],
});

export const ErrorSchema = Type.Object(
  {
    error: Type.Object({
      code: Type.String({ description: "Stable error code (docs/errors.md)" }),
      message: Type.String(),
      field: Type.Optional(Type.String({ description: "Request field at fault" })),
      current_status: Type.Optional(Type.String({ description: "Machine status, for state conflicts" })),
      stdout: Type.Optional(Type.String({ description: "EXEC_TIMEOUT: the output so far, in the request's `encoding`" })),
      stderr: Type.Optional(Type.String({ description: "EXEC_TIMEOUT: the output so far, in the request's `encoding`" })),
      stdout_truncated: Type.Optional(Type.Boolean({ description: "EXEC_TIMEOUT: stdout had more than `max_output_bytes`" })),
      stderr_truncated: Type.Optional(Type.Boolean({ description: "EXEC_TIMEOUT: stderr had more than `max_output_bytes`" })),
      machines: Type.Optional(Type.Array(Type.String(), { description: "SNAPSHOT_IN_USE: the machines created from the snapshot" })),
      machine_vmm: Type.Optional(Type.String({ description: "VMM_MISMATCH: the VMM the machine was created under" })),
      daemon_vmm: Type.Optional(Type.String({ description: "VMM_MISMATCH: the VMM this daemon runs" })),
      machine_id: Type.Optional(Type.String({ description: "VOLUME_IN_USE: the machine that holds the volume" })),
    }),
  },
  { $id: "Error", description: "Error response" },
);
