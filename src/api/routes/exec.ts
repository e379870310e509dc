/** POST /machines/:id/exec */
import type { FastifyInstance } from "fastify";
import { HyperfleetError } from "../../core/errors.js";
import { MachineIdParams } from "../../contract/common.js";
import { ANY_ROUTE, GUEST_CALL, routeErrors, WITH_BODY } from "../route-errors.js";
import { DEFAULT_EXEC_TIMEOUT_S, ExecBody, ExecResponse } from "../../contract/exec.js";
import type { MachineServicePort } from "../../core/ports/services.js";
import { bindMachineId, callContext } from "./context.js";

const EXEC = routeErrors(ANY_ROUTE, WITH_BODY, GUEST_CALL, ["EXEC_NOT_FOUND", "EXEC_PERMISSION_DENIED", "EXEC_TIMEOUT"]);

export function execRoutes(app: FastifyInstance, service: MachineServicePort, opts: { bodyLimit: number; outputMax: number }): void {
  app.addHook("preHandler", bindMachineId);

  app.post<{ Params: MachineIdParams; Body: ExecBody }>(
    "/machines/:id/exec",
    {
      bodyLimit: opts.bodyLimit,
      config: {
        ...EXEC.config,
        bodyTooLargeMessage:
          `the exec body is larger than ${opts.bodyLimit} bytes (HYPERFLEET_EXEC_MAX_BODY); larger stdin does not belong in an exec ` +
          "request: upload it with POST /machines/{id}/files and redirect it (sh -c 'cmd < /tmp/input')",
      },
      schema: {
        tags: ["exec"],
        summary: "Run a command",
        description:
          "Runs `command` (or `cmd`) in the running machine and answers with its exit code and output. " +
          "A command that outlives `timeout` is killed and answered with 504 EXEC_TIMEOUT (partial output included). " +
          `Each of stdout and stderr is kept up to \`max_output_bytes\` (at most ${opts.outputMax}, HYPERFLEET_EXEC_OUTPUT_MAX); ` +
          "the rest is dropped and flagged with `stdout_truncated`/`stderr_truncated`.",
        params: MachineIdParams,
        body: ExecBody,
        response: { 200: ExecResponse, ...EXEC.responses },
      },
    },
    async (req, reply) => {
      const b = req.body;
      if (b.command !== undefined && b.cmd !== undefined && JSON.stringify(b.command) !== JSON.stringify(b.cmd)) {
        throw new HyperfleetError("INVALID_ARGUMENT", "give either 'command' or 'cmd' (its older name), not two different commands", {
          details: { field: "cmd" },
        });
      }
      const command = b.command ?? b.cmd;
      if (command === undefined) {
        throw new HyperfleetError("INVALID_ARGUMENT", "command: is required (an argv array such as [\"ls\", \"-la\"])", {
          details: { field: "command" },
        });
      }
      const r = await service.exec(
        req.params.id,
        {
          command,
          timeoutMs: Math.round((b.timeout ?? DEFAULT_EXEC_TIMEOUT_S) * 1000),
          ...(b.env !== undefined && { env: b.env }),
          ...(b.cwd !== undefined && { cwd: b.cwd }),
          ...(b.user !== undefined && { user: b.user }),
          ...(b.stdin !== undefined && { stdin: b.stdin }),
          maxOutputBytes: Math.min(b.max_output_bytes ?? opts.outputMax, opts.outputMax),
          encoding: b.encoding ?? "utf8",
        },
        callContext(req, reply),
      );
      return {
        exit_code: r.exitCode,
        signal: r.signal,
        stdout: r.stdout,
        stderr: r.stderr,
        duration_ms: r.durationMs,
        stdout_truncated: r.stdoutTruncated,
        stderr_truncated: r.stderrTruncated,
      };
    },
  );
}
