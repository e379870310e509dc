/** Schema pieces shared by several routes. */
import { Type, type Static, type TSchema } from "@sinclair/typebox";
import { MACHINE_STATUSES } from "../../core/machine-state.js";

/** OpenAPI 3.0 nullable (response schemas only: fast-json-stringify and Swagger understand it). */
export const Nullable = <T extends TSchema>(t: T) => Type.Unsafe<Static<T> | null>({ ...t, nullable: true });

export const MACHINE_ID_PATTERN = "^vm_[0-9A-HJKMNP-TV-Z]{26}$";

export const MachineIdParams = Type.Object({
  id: Type.String({ pattern: MACHINE_ID_PATTERN, description: "Machine id, `vm_<ULID>`", examples: ["vm_01J9Z6Y8W2V4T0S5R3Q1P7N9M8"] }),
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

/** Absolute guest path; NUL bytes cannot reach a C string in the guest. */
export const GuestPath = Type.String({
  minLength: 1,
  maxLength: 4096,
  pattern: "^/[^\\u0000]*$",
  description: "Absolute path inside the guest",
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
    }),
  },
  { $id: "Error", description: "Error response" },
);

/** Error responses for the OpenAPI document: status -> shared Error schema. */
export function errorResponses(...statuses: number[]): Record<number, unknown> {
  const out: Record<number, unknown> = {};
  for (const s of [400, 401, ...statuses]) out[s] = { $ref: "Error#" };
  return out;
}
