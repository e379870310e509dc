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

// --- Streaming exec over a WebSocket (GET /machines/:id/exec/ws; docs/exec-stream.md) ---

/** Longest `timeout_ms` of a streamed exec (24 h): interactive sessions run long. */
export const MAX_EXEC_STREAM_TIMEOUT_MS = 86_400_000;
/** Largest WebSocket message the server takes (stdin chunks and control messages). */
export const EXEC_WS_MAX_MESSAGE = 1024 * 1024;
/** The first byte of every binary message the server sends: which stream the rest is from. */
export const ExecWsStream = { STDOUT: 1, STDERR: 2 } as const;
/** Subprotocol a client offers (a browser cannot set Authorization on a WebSocket). */
export const EXEC_WS_PROTOCOL = "hyperfleet.v1";
/** Prefix of the subprotocol that carries the API key: `bearer.<key>`. */
export const WS_BEARER_PREFIX = "bearer.";
/** Close code for an error: 4000 + the HTTP status of its code (4400 INVALID_ARGUMENT, 4409 MACHINE_NOT_RUNNING, ...). */
export const WS_ERROR_CLOSE_BASE = 4000;

const dimension = (what: string) => Type.Integer({ minimum: 1, maximum: 65535, description: what });

export const ExecWsStart = Type.Object(
  {
    command: argv("argv; argv[0] is looked up in PATH"),
    env: Type.Optional(EnvMap),
    cwd: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, pattern: "^/[^\\u0000]*$" })),
    user: Type.Optional(Type.String({ minLength: 1, maxLength: 64, pattern: "^[A-Za-z0-9_.:-]+$", description: "name, uid or uid:gid" })),
    stdin: Type.Optional(Type.Boolean({ default: true, description: "false: the command reads /dev/null (binary messages are then ignored)" })),
    tty: Type.Optional(
      Type.Object(
        { rows: dimension("terminal rows"), cols: dimension("terminal columns") },
        { additionalProperties: false, description: "Run on a new terminal (PTY) of this size: its output is all stdout" },
      ),
    ),
    timeout_ms: Type.Optional(
      Type.Integer({ minimum: 1, maximum: MAX_EXEC_STREAM_TIMEOUT_MS, description: "Kill the command (SIGKILL to its group) after this long; default none" }),
    ),
  },
  { additionalProperties: false },
);
export type ExecWsStart = Static<typeof ExecWsStart>;

/** The control messages by `type`, so a bad one is reported by its own fields. */
export const ExecWsControls = {
  resize: Type.Object({ type: Type.Literal("resize"), rows: dimension("terminal rows"), cols: dimension("terminal columns") }, { additionalProperties: false }),
  signal: Type.Object(
    {
      type: Type.Literal("signal"),
      signal: Type.Union([Type.Integer({ minimum: 1, maximum: 64 }), Type.String({ pattern: "^SIG[A-Z0-9]+$", maxLength: 16 })], {
        description: "a number or a name such as SIGINT",
      }),
    },
    { additionalProperties: false },
  ),
  eof: Type.Object({ type: Type.Literal("eof") }, { additionalProperties: false }),
};
export const ExecWsControl = Type.Union([ExecWsControls.resize, ExecWsControls.signal, ExecWsControls.eof]);
export type ExecWsControl = Static<typeof ExecWsControl>;
