/** GET /machines/:id/exec/ws: a streamed exec over a WebSocket (docs/exec-stream.md). */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { HyperfleetError } from "../../core/errors.js";
import { MachineIdParams } from "../../contract/common.js";
import { EXEC_WS_PROTOCOL, WS_BEARER_PREFIX, WS_ERROR_CLOSE_BASE, ExecWsStream } from "../../contract/exec.js";
import type { MachineServicePort } from "../../core/ports/services.js";
import { runExecSession, START_TIMEOUT_MS } from "../exec-ws-session.js";
import { ANY_ROUTE, GUEST_CALL, routeErrors } from "../route-errors.js";
import { bindMachineId } from "./context.js";

const EXEC_WS = routeErrors(ANY_ROUTE, GUEST_CALL, ["EXEC_NOT_FOUND", "EXEC_PERMISSION_DENIED", "REQUEST_TIMEOUT"]);

const DESCRIPTION = [
  "A WebSocket (send `Upgrade: websocket`). Authenticate with `Authorization: Bearer <key>`, or, from a browser, offer the",
  `subprotocols \`${EXEC_WS_PROTOCOL}\` and \`${WS_BEARER_PREFIX}<key>\`. Before the upgrade the machine is checked: an unknown one`,
  "is 404 MACHINE_NOT_FOUND, a paused one 409 MACHINE_PAUSED, one not running 409 MACHINE_NOT_RUNNING (plain HTTP answers).",
  "",
  "Client → server: first a text message, the JSON start message `{command, env?, cwd?, user?, stdin?, tty?: {rows, cols},",
  `timeout_ms?}\` (within ${START_TIMEOUT_MS / 1000} s); then binary messages are stdin (raw bytes), and text messages are control:`,
  '`{"type":"resize","rows":R,"cols":C}`, `{"type":"signal","signal":2 | "SIGINT"}` (to the process group) and `{"type":"eof"}`',
  "(end of stdin; on a terminal one ^D).",
  "",
  `Server → client: \`{"type":"started","pid":N}\`; binary messages whose first byte is the stream (${ExecWsStream.STDOUT} stdout,`,
  `${ExecWsStream.STDERR} stderr; a terminal has only stdout) and the rest its bytes; last \`{"type":"exit","exit_code","signal","timed_out","duration_ms"}\`,`,
  "then close 1000. An error after the upgrade is a text message `{\"type\":\"error\",\"error\":{code,message,field?}}` and close",
  `code ${WS_ERROR_CLOSE_BASE} + the code's HTTP status (e.g. 4400 INVALID_ARGUMENT, 4404 EXEC_NOT_FOUND, 4409 MACHINE_NOT_RUNNING).`,
  "When the client disconnects, the process group is killed. Output is flow-controlled per exec: a client that reads slowly",
  "slows the process down, the daemon does not buffer for it.",
].join("\n");

export function execWsRoutes(app: FastifyInstance, service: MachineServicePort): void {
  app.addHook("preHandler", bindMachineId);

  app.route<{ Params: MachineIdParams }>({
    method: "GET",
    url: "/machines/:id/exec/ws",
    config: EXEC_WS.config,
    schema: {
      tags: ["exec"],
      summary: "Run a command with streamed stdin/stdout/stderr, optionally on a terminal (WebSocket)",
      description: DESCRIPTION,
      params: MachineIdParams,
      response: { ...EXEC_WS.responses },
    },
    // Before the upgrade, so the client gets a plain HTTP answer it can read.
    preHandler: async (req: FastifyRequest<{ Params: MachineIdParams }>) => {
      const m = await service.get(req.params.id);
      if (m.status === "paused") {
        throw new HyperfleetError("MACHINE_PAUSED", `machine ${m.id} is paused; POST /machines/${m.id}/resume first`, { details: { current_status: m.status } });
      }
      if (m.status !== "running") {
        throw new HyperfleetError("MACHINE_NOT_RUNNING", `machine ${m.id} is '${m.status}', not running; start it and wait for 'running'`, {
          details: { current_status: m.status },
        });
      }
    },
    handler: async (_req: FastifyRequest, _reply: FastifyReply) => {
      throw new HyperfleetError("INVALID_ARGUMENT", "this is a WebSocket endpoint: connect with 'Upgrade: websocket' (docs/exec-stream.md)", {
        details: { field: "upgrade" },
      });
    },
    wsHandler: (socket, req) => {
      const id = (req.params as MachineIdParams).id;
      runExecSession(socket, (r) => service.execStream(id, r), req.log);
    },
  });
}
