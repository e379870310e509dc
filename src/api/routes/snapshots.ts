/** Snapshots (docs/adr/0009): take one of a machine, list, get, delete. */
import type { FastifyInstance } from "fastify";
import { Type } from "@sinclair/typebox";
import { MachineIdParams } from "../../contract/common.js";
import { SnapshotIdParams, type SnapshotJson } from "../../contract/snapshot.js";
import type { SnapshotServicePort } from "../../core/ports/services.js";
import { ANY_ROUTE, routeErrors } from "../route-errors.js";
import { snapshotJson } from "../serialize.js";
import { callContext } from "./context.js";

const tags = ["snapshots"];
const SNAPSHOT_REF = Type.Unsafe<SnapshotJson>({ $ref: "Snapshot#" });

const CREATE = routeErrors(ANY_ROUTE, ["MACHINE_NOT_FOUND", "MACHINE_NOT_RUNNING", "SNAPSHOT_FAILED", "SHUTTING_DOWN", "IMAGE_NOT_CACHED", "MACHINE_HAS_VOLUMES"]);
const LIST = routeErrors(ANY_ROUTE);
const GET = routeErrors(ANY_ROUTE, ["SNAPSHOT_NOT_FOUND"]);
const DELETE = routeErrors(ANY_ROUTE, ["SNAPSHOT_NOT_FOUND", "SNAPSHOT_IN_USE"]);

export function snapshotRoutes(app: FastifyInstance, service: SnapshotServicePort): void {
  app.post<{ Params: MachineIdParams }>(
    "/machines/:id/snapshots",
    {
      config: CREATE.config,
      schema: {
        tags,
        summary: "Snapshot a machine",
        description:
          "Saves a running or paused machine's memory, devices and disk so that new machines start from it in milliseconds " +
          "(`POST /machines` with `snapshot`). The machine is frozen only while its state is saved and goes on as it was. " +
          "409 MACHINE_NOT_RUNNING unless it is `running` or `paused`.",
        params: MachineIdParams,
        response: { 201: SNAPSHOT_REF, ...CREATE.responses },
      },
    },
    async (req, reply) => reply.code(201).send(snapshotJson(await service.create(req.params.id, callContext(req, reply)))),
  );

  app.get(
    "/snapshots",
    { config: LIST.config, schema: { tags, summary: "List snapshots", response: { 200: Type.Array(SNAPSHOT_REF), ...LIST.responses } } },
    async (req, reply) => (await service.list(callContext(req, reply))).map(snapshotJson),
  );

  app.get<{ Params: SnapshotIdParams }>(
    "/snapshots/:id",
    { config: GET.config, schema: { tags, summary: "Get a snapshot", params: SnapshotIdParams, response: { 200: SNAPSHOT_REF, ...GET.responses } } },
    async (req, reply) => snapshotJson(await service.get(req.params.id, callContext(req, reply))),
  );

  app.delete<{ Params: SnapshotIdParams }>(
    "/snapshots/:id",
    {
      config: DELETE.config,
      schema: {
        tags,
        summary: "Delete a snapshot",
        description: "Removes the snapshot and its files. 409 SNAPSHOT_IN_USE while machines created from it exist (`machines` lists them).",
        params: SnapshotIdParams,
        response: { 204: Type.Null(), ...DELETE.responses },
      },
    },
    async (req, reply) => {
      await service.delete(req.params.id, callContext(req, reply));
      return reply.code(204).send();
    },
  );
}
