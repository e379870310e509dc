/** A machine's proxy access token (issue 14, per-VM URLs): read it, rotate it. */
import type { FastifyInstance } from "fastify";
import { AccessTokenSchema } from "../../contract/machine.js";
import { MachineIdParams } from "../../contract/common.js";
import type { MachineServicePort } from "../../core/ports/services.js";
import { ANY_ROUTE, routeErrors } from "../route-errors.js";
import { bindMachineId, callContext } from "./context.js";

const tags = ["machines"];
const ERRORS = routeErrors(ANY_ROUTE, ["MACHINE_NOT_FOUND"]);

export function tokenRoutes(app: FastifyInstance, service: MachineServicePort): void {
  app.addHook("preHandler", bindMachineId);

  app.get<{ Params: MachineIdParams }>(
    "/machines/:id/token",
    {
      config: ERRORS.config,
      schema: {
        tags,
        summary: "Get a machine's access token",
        description: "The token its private services (`services`, visibility `private`) need through the proxy: header `X-Hyperfleet-Token` or cookie `hf_token`.",
        params: MachineIdParams,
        response: { 200: AccessTokenSchema, ...ERRORS.responses },
      },
    },
    async (req, reply) => ({ token: await service.accessToken(req.params.id, callContext(req, reply)) }),
  );

  app.post<{ Params: MachineIdParams }>(
    "/machines/:id/token/rotate",
    {
      config: ERRORS.config,
      schema: {
        tags,
        summary: "Rotate a machine's access token",
        description: "Replaces the token; the old one is refused from the next request on (connections already upgraded to WebSockets stay open).",
        params: MachineIdParams,
        response: { 200: AccessTokenSchema, ...ERRORS.responses },
      },
    },
    async (req, reply) => ({ token: await service.rotateAccessToken(req.params.id, callContext(req, reply)) }),
  );
}
