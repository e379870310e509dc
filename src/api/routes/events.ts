/** GET /machines/:id/events: what the restart policy and the health check did (issue 14). */
import type { FastifyInstance } from "fastify";
import { Type } from "@sinclair/typebox";
import { MachineIdParams } from "../../contract/common.js";
import { MachineEventSchema } from "../../contract/health.js";
import { ANY_ROUTE, routeErrors } from "../route-errors.js";
import type { MachineServicePort } from "../../core/ports/services.js";
import { machineEventJson } from "../serialize.js";
import { bindMachineId, callContext } from "./context.js";

export const EVENTS = routeErrors(ANY_ROUTE, ["MACHINE_NOT_FOUND"]);

export function eventRoutes(app: FastifyInstance, service: MachineServicePort): void {
  app.addHook("preHandler", bindMachineId);

  app.get<{ Params: MachineIdParams }>(
    "/machines/:id/events",
    {
      config: EVENTS.config,
      schema: {
        tags: ["machines"],
        summary: "Restart and health events",
        description:
          "The machine's recent events, oldest first (the last 200 are kept, in the store): each restart its `restart_policy` made " +
          "(why, attempt, backoff), each restart it did not make (limit reached), and each change of its health status.",
        params: MachineIdParams,
        response: { 200: Type.Array(MachineEventSchema), ...EVENTS.responses },
      },
    },
    async (req, reply) => (await service.events(req.params.id, callContext(req, reply))).map(machineEventJson),
  );
}
