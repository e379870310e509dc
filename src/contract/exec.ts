/** Command execution in a running machine. */
import { Type, type Static } from "@sinclair/typebox";
import { EnvMap, Nullable } from "./common.js";

const argv = (description: string) =>
  Type.Array(Type.String({ maxLength: 65536 }), { minItems: 1, maxItems: 4096, examples: [["ls", "-la", "/"]], description });

export const MAX_EXEC_TIMEOUT_S = 3600;
export const DEFAULT_EXEC_TIMEOUT_S = 60;

export const ExecBody = Type.Object(
  {
    command: Type.Optional(argv("argv; argv[0] is looked up in PATH (preferred)")),
    cmd: Type.Optional(argv("Same as `command` (kept for backward compatibility)")),
    timeout: Type.Optional(
      Type.Number({
        exclusiveMinimum: 0,
        maximum: MAX_EXEC_TIMEOUT_S,
        description: `Seconds before the command is killed and the call fails with 504 EXEC_TIMEOUT (default ${DEFAULT_EXEC_TIMEOUT_S})`,
      }),
    ),
    env: Type.Optional(EnvMap),
    cwd: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, pattern: "^/[^\\u0000]*$" })),
    user: Type.Optional(Type.String({ minLength: 1, maxLength: 64, pattern: "^[A-Za-z0-9_.:-]+$", description: "name, uid or uid:gid" })),
    stdin: Type.Optional(Type.String({ description: "Text written to the command's standard input" })),
    max_output_bytes: Type.Optional(
      Type.Integer({
        minimum: 0,
        description:
          "Bytes of stdout and, separately, of stderr to answer with; the rest is dropped while the command runs on, " +
          "and `stdout_truncated`/`stderr_truncated` say so. Capped at HYPERFLEET_EXEC_OUTPUT_MAX (a larger value gets that)",
      }),
    ),
    encoding: Type.Optional(
      Type.Union([Type.Literal("utf8"), Type.Literal("base64")], {
        default: "utf8",
        description:
          "How `stdout` and `stderr` are sent: `utf8` (default; bytes that are not UTF-8 become U+FFFD) or " +
          "`base64` (the raw bytes, standard alphabet with padding). Also applies to the partial output of EXEC_TIMEOUT",
      }),
    ),
  },
  { additionalProperties: false },
);
export type ExecBody = Static<typeof ExecBody>;

export const ExecResponse = Type.Object({
  exit_code: Nullable(Type.Integer({ description: "null when killed by a signal" })),
  signal: Nullable(Type.Integer()),
  stdout: Type.String({ description: "Standard output in the request's `encoding` (at most `max_output_bytes` bytes of it)" }),
  stderr: Type.String({ description: "Standard error in the request's `encoding` (at most `max_output_bytes` bytes of it)" }),
  duration_ms: Type.Number(),
  stdout_truncated: Type.Boolean({ description: "The command wrote more to stdout than `max_output_bytes`; the rest was dropped" }),
  stderr_truncated: Type.Boolean({ description: "The command wrote more to stderr than `max_output_bytes`; the rest was dropped" }),
});
export type ExecResponse = Static<typeof ExecResponse>;
