/** PUT /machines/:id/secrets: rotation (docs/agents.md, "Secrets"). Values come in, never go out. */
import type { FastifyInstance } from "fastify";
import type { MachineServicePort } from "../../core/ports/services.js";
import { MachineIdParams } from "../../contract/common.js";
import { SetSecretsBody } from "../../contract/machine.js";
import { machineJson } from "../serialize.js";
import { ANY_ROUTE, GUEST_CALL, routeErrors, WITH_BODY } from "../route-errors.js";
import { bindMachineId, callContext, MACHINE_REF } from "./context.js";

const SET = routeErrors(ANY_ROUTE, WITH_BODY, GUEST_CALL, ["SECRETS_TOO_LARGE", "FILE_NO_SPACE", "FILE_OPERATION_FAILED"]);

export function secretRoutes(app: FastifyInstance, service: MachineServicePort): void {
  app.addHook("preHandler", bindMachineId);

  app.put<{ Params: MachineIdParams; Body: SetSecretsBody }>(
    "/machines/:id/secrets",
    {
      config: SET.config,
      schema: {
        tags: ["machines"],
        summary: "Replace a machine's secrets",
        description:
          "Replaces all of the machine's secrets (names not given are removed). On a running machine /run/secrets is rewritten " +
          "before the answer; its main process sees new values in its environment at its next start. A paused machine is refused " +
          "(409 MACHINE_PAUSED). The answer shows `secret_names`, never a value.",
        params: MachineIdParams,
        body: SetSecretsBody,
        response: { 200: MACHINE_REF, ...SET.responses },
      },
    },
    async (req, reply) => machineJson(await service.setSecrets(req.params.id, req.body.secrets, callContext(req, reply))),
  );
}
