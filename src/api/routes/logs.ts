/** GET /machines/:id/logs: the main process's output, whole or followed. */
import { Readable } from "node:stream";
import type { FastifyInstance } from "fastify";
import { MachineIdParams } from "../../contract/common.js";
import { ANY_ROUTE, GUEST_CALL, routeErrors } from "../route-errors.js";
import { LogsQuery } from "../../contract/machine.js";
import type { MachineServicePort } from "../../core/ports/services.js";
import { bindMachineId, callContext } from "./context.js";

// The log is a file in the guest, read over the agent.
export const LOGS = routeErrors(ANY_ROUTE, GUEST_CALL, ["FILE_OPERATION_FAILED", "FILE_TRANSFER_TIMEOUT"]);

export function logRoutes(app: FastifyInstance, service: MachineServicePort): void {
  app.addHook("preHandler", bindMachineId);

  app.get<{ Params: MachineIdParams; Querystring: LogsQuery }>(
    "/machines/:id/logs",
    {
      config: LOGS.config,
      schema: {
        tags: ["machines"],
        summary: "Main process output",
        description:
          "The output (stdout and stderr, interleaved) of the machine's main process, as text/plain. With `follow=true` the response " +
          "streams (chunked) new output every 250 ms and ends when the process has exited and everything was sent, when the machine " +
          "stops, or when the client disconnects. `tail=N` starts with the last N lines. The machine must be running.",
        params: MachineIdParams,
        querystring: LogsQuery,
        produces: ["text/plain"],
        response: { 200: { description: "Output bytes", content: { "text/plain": { schema: { type: "string" } } } }, ...LOGS.responses },
      },
    },
    async (req, reply) => {
      const q = req.query;
      const ctx = callContext(req, reply);
      const out = await service.logs(req.params.id, { follow: q.follow ?? false, ...(q.tail !== undefined && { tail: q.tail }) }, ctx);
      void reply.type("text/plain; charset=utf-8").header("cache-control", "no-store");
      if (Buffer.isBuffer(out)) return reply.send(out);
      // Proxies must not hold back a followed stream until it ends.
      void reply.header("x-accel-buffering", "no");
      return reply.send(Readable.from(out, { objectMode: false }));
    },
  );
}
