/** Helpers every route uses: the call context (logger, abort signal) and the shared param hook. */
import type { FastifyReply, FastifyRequest } from "fastify";
import { Type } from "@sinclair/typebox";
import type { MachineJson } from "../../contract/machine.js";
import type { CallContext } from "../../core/ports/services.js";

/** The request's logger and a signal that fires if the client goes away before the answer. */
export function callContext(req: FastifyRequest, reply: FastifyReply): CallContext {
  const ac = new AbortController();
  reply.raw.once("close", () => {
    if (!reply.raw.writableFinished) ac.abort();
  });
  return { log: req.log, signal: ac.signal };
}

/** preHandler: binds the machine id to the request's logger, so every line about it carries it. */
export function bindMachineId(req: FastifyRequest, _reply: FastifyReply, done: () => void): void {
  const id = (req.params as { id?: unknown } | undefined)?.id;
  if (typeof id === "string") req.log = req.log.child({ machine_id: id });
  done();
}

/** The shared Machine schema (registered once with addSchema, a component in the OpenAPI document). */
export const MACHINE_REF = Type.Unsafe<MachineJson>({ $ref: "Machine#" });
