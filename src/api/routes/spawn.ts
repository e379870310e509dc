/**
 * Hypercore's spawn API (POST /spawn, GET /stop, /list, /logs): aliases over the machines
 * service, so a Hypercore client works unchanged; each answers with the codes of the route it
 * stands for. Stop is a delete: Hypercore's stop ends the workload for good ("stop and respawn").
 */
import type { FastifyInstance, FastifyRequest } from "fastify";
import { ulid } from "ulid";
import {
  SPAWN_TAG,
  SpawnBody,
  SpawnIdQuery,
  SpawnListResponse,
  SpawnLogsResponse,
  SpawnResponse,
  SpawnStopResponse,
} from "../../contract/spawn.js";
import type { MachineServicePort } from "../../core/ports/services.js";
import { spawnListEntry, spawnRequest, spawnUrl } from "../spawn.js";
import { callContext } from "./context.js";
import { CREATE, DELETE, LIST } from "./machines.js";
import { LOGS } from "./logs.js";

const tags = [SPAWN_TAG];

/** Bounded: only the hostname part of the Host header is echoed into a url. */
const clientHost = (req: FastifyRequest) => req.hostname.slice(0, 253);

export function spawnRoutes(app: FastifyInstance, service: MachineServicePort): void {
  app.post<{ Body: SpawnBody }>(
    "/spawn",
    {
      config: CREATE.config,
      schema: {
        tags,
        summary: "Spawn a workload (Hypercore)",
        description:
          "Creates and starts a machine from `image_ref` (POST /machines with `start: true`); answers at once, the pull and boot go on " +
          "(GET /list shows `status`). `ports` maps host port -> guest port and gives the machine a network.",
        body: SpawnBody,
        response: { 200: SpawnResponse, ...CREATE.responses },
      },
    },
    async (req, reply) => {
      const m = await service.create(spawnRequest(req.body, `spawn-${ulid().toLowerCase()}`), callContext(req, reply));
      return { response: { id: m.id, url: spawnUrl(m, clientHost(req)) } } satisfies SpawnResponse;
    },
  );

  app.get<{ Querystring: SpawnIdQuery }>(
    "/stop",
    {
      config: DELETE.config,
      schema: {
        tags,
        summary: "Stop a workload (Hypercore)",
        description: "Kills the machine and removes it with its disk (DELETE /machines/{id}).",
        querystring: SpawnIdQuery,
        response: { 200: SpawnStopResponse, ...DELETE.responses },
      },
    },
    async (req, reply) => {
      await service.delete(req.query.id, callContext(req, reply));
      return { response: { id: req.query.id } } satisfies SpawnStopResponse;
    },
  );

  app.get(
    "/list",
    {
      config: LIST.config,
      schema: { tags, summary: "List workloads (Hypercore)", description: "Every machine (GET /machines).", response: { 200: SpawnListResponse, ...LIST.responses } },
    },
    async (req, reply) => {
      const list = await service.list({}, callContext(req, reply));
      return { response: list.map((m) => spawnListEntry(m, clientHost(req))) } satisfies SpawnListResponse;
    },
  );

  app.get<{ Querystring: SpawnIdQuery }>(
    "/logs",
    {
      config: LOGS.config,
      schema: {
        tags,
        summary: "A workload's output (Hypercore)",
        description: "The image command's stdout and stderr so far (GET /machines/{id}/logs, without follow). The machine must be running.",
        querystring: SpawnIdQuery,
        response: { 200: SpawnLogsResponse, ...LOGS.responses },
      },
    },
    async (req, reply) => {
      const out = await service.logs(req.query.id, { follow: false }, callContext(req, reply));
      // Without follow the service answers one buffer, bounded by MAX_LOG_READ (src/workload/main-log.ts).
      if (!Buffer.isBuffer(out)) throw new Error("logs without follow answered a stream");
      return { response: { id: req.query.id, logs: out.toString("utf8") } } satisfies SpawnLogsResponse;
    },
  );
}
