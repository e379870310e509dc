/** Volumes (docs/agents.md "Volumes"): create, list, get, delete. */
import type { FastifyInstance } from "fastify";
import { Type } from "@sinclair/typebox";
import { CreateVolumeBody, VolumeRefParams, type VolumeJson } from "../../contract/volume.js";
import type { VolumeServicePort } from "../../core/ports/services.js";
import { ANY_ROUTE, WITH_BODY, routeErrors } from "../route-errors.js";
import { volumeJson } from "../serialize.js";

const tags = ["volumes"];
const VOLUME_REF = Type.Unsafe<VolumeJson>({ $ref: "Volume#" });

const CREATE = routeErrors(ANY_ROUTE, WITH_BODY, ["VOLUME_ALREADY_EXISTS"]);
const LIST = routeErrors(ANY_ROUTE);
const GET = routeErrors(ANY_ROUTE, ["VOLUME_NOT_FOUND"]);
const DELETE = routeErrors(ANY_ROUTE, ["VOLUME_NOT_FOUND", "VOLUME_IN_USE"]);

export function volumeRoutes(app: FastifyInstance, service: VolumeServicePort): void {
  app.post<{ Body: CreateVolumeBody }>(
    "/volumes",
    {
      config: CREATE.config,
      schema: {
        tags,
        summary: "Create a volume",
        description:
          "A named persistent disk (sparse, formatted ext4 the first time a machine boots with it). Machines name it in `volumes` at create; " +
          "it outlives them, and has one writer at a time.",
        body: CreateVolumeBody,
        response: { 201: VOLUME_REF, ...CREATE.responses },
      },
    },
    async (req, reply) => reply.code(201).send(volumeJson(await service.create({ name: req.body.name, sizeMib: req.body.size_mib }))),
  );

  app.get(
    "/volumes",
    { config: LIST.config, schema: { tags, summary: "List volumes", response: { 200: Type.Array(VOLUME_REF), ...LIST.responses } } },
    async () => (await service.list()).map(volumeJson),
  );

  app.get<{ Params: VolumeRefParams }>(
    "/volumes/:id_or_name",
    { config: GET.config, schema: { tags, summary: "Get a volume", params: VolumeRefParams, response: { 200: VOLUME_REF, ...GET.responses } } },
    async (req) => volumeJson(await service.get(req.params.id_or_name)),
  );

  app.delete<{ Params: VolumeRefParams }>(
    "/volumes/:id_or_name",
    {
      config: DELETE.config,
      schema: {
        tags,
        summary: "Delete a volume",
        description: "Removes the volume and its data. 409 VOLUME_IN_USE while a machine holds it (the error's `machine_id`): delete that machine first.",
        params: VolumeRefParams,
        response: { 204: Type.Null(), ...DELETE.responses },
      },
    },
    async (req, reply) => {
      await service.delete(req.params.id_or_name);
      return reply.code(204).send();
    },
  );
}
