/** Background processes: started by one request, listed, signalled and read by later ones. */
import { Type, type Static } from "@sinclair/typebox";
import { EnvMap, MACHINE_ID_PATTERN, Nullable } from "./common.js";

export const ProcessStartBody = Type.Object(
  {
    command: Type.Array(Type.String({ maxLength: 65536 }), { minItems: 1, maxItems: 4096, examples: [["python3", "-m", "http.server"]], description: "argv; argv[0] is looked up in PATH" }),
    env: Type.Optional(EnvMap),
    cwd: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, pattern: "^/[^\\u0000]*$" })),
    user: Type.Optional(Type.String({ minLength: 1, maxLength: 64, pattern: "^[A-Za-z0-9_.:-]+$", description: "name, uid or uid:gid" })),
    tty: Type.Optional(
      Type.Object({ rows: Type.Integer({ minimum: 1, maximum: 65535 }), cols: Type.Integer({ minimum: 1, maximum: 65535 }) }, {
        additionalProperties: false,
        description: "Not supported yet (422 NOT_SUPPORTED_YET): a background process reads /dev/null; use the exec WebSocket for a terminal",
      }),
    ),
  },
  { additionalProperties: false },
);
export type ProcessStartBody = Static<typeof ProcessStartBody>;

export const ProcessSchema = Type.Object({
  pid: Type.Integer({ description: "Its pid in the guest (leader of its own process group)" }),
  command: Type.Array(Type.String()),
  status: Type.Union([Type.Literal("running"), Type.Literal("exited")]),
  exit_code: Nullable(Type.Integer({ description: "null while running or when killed by a signal" })),
  signal: Nullable(Type.Integer({ description: "The signal that ended it" })),
  started_at: Type.String(),
  exited_at: Nullable(Type.String()),
});
export type ProcessJson = Static<typeof ProcessSchema>;

export const ProcessList = Type.Object({ processes: Type.Array(ProcessSchema) });

export const ProcessParams = Type.Object({
  id: Type.String({ pattern: MACHINE_ID_PATTERN, description: "Machine id, `vm_<ULID>`" }),
  pid: Type.Integer({ minimum: 1, maximum: 4194304, description: "The process's pid in the guest" }),
});
export type ProcessParams = Static<typeof ProcessParams>;

export const SignalBody = Type.Object(
  {
    signal: Type.Union([Type.Integer({ minimum: 1, maximum: 64 }), Type.String({ pattern: "^SIG[A-Z0-9]+$", maxLength: 16 })], {
      description: "A number or a name such as SIGTERM (to the process's group)",
    }),
  },
  { additionalProperties: false },
);
export type SignalBody = Static<typeof SignalBody>;
