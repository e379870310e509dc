/** Machine CRUD, lifecycle actions and wait. */
import type { FastifyInstance } from "fastify";
import { Type } from "@sinclair/typebox";
import { isMachineStatus, type MachineStatus } from "../../core/machine-state.js";
import { createMachineRequest } from "../requests.js";
import { MachineIdParams } from "../../contract/common.js";
import { ANY_ROUTE, routeErrors, WITH_BODY } from "../route-errors.js";
import { CreateMachineBody, ForkBody, ListMachinesQuery, WaitQuery } from "../../contract/machine.js";
import { machineJson } from "../serialize.js";
import type { MachineServicePort } from "../../core/ports/services.js";
import { bindMachineId, callContext, MACHINE_REF } from "./context.js";

const tags = ["machines"];

export const LIST = routeErrors(ANY_ROUTE);
// A create with `start: true` is also a start; an image is only pulled later (its errors land in
// last_error). NOT_SUPPORTED_YET: a VMM kind that is not there yet. INSUFFICIENT_CAPACITY also
// when HYPERFLEET_SUBNET has no address left; the PORT_ codes are the exposed ports' (docs/adr/0008).
// VMM_MISMATCH: a machine (or a clone's snapshot) of another VMM than the daemon's is never booted by it.
export const CREATE = routeErrors(ANY_ROUTE, WITH_BODY, ["SERVICE_NEEDS_NETWORK", "MACHINE_ALREADY_EXISTS", "NOT_SUPPORTED_YET", "INSUFFICIENT_CAPACITY", "GUEST_ASSETS_MISSING", "SHUTTING_DOWN", "PORT_UNAVAILABLE", "PORT_RANGE_EXHAUSTED", "SNAPSHOT_NOT_FOUND", "SNAPSHOT_INCOMPATIBLE", "IMAGE_NOT_CACHED", "VMM_MISMATCH", "SECRETS_TOO_LARGE", "HEALTH_CHECK_NEEDS_NETWORK", "VOLUME_NOT_FOUND", "VOLUME_IN_USE"]);
const GET = routeErrors(ANY_ROUTE, ["MACHINE_NOT_FOUND"]);
export const DELETE = routeErrors(ANY_ROUTE, ["MACHINE_NOT_FOUND", "INVALID_STATE_TRANSITION", "SHUTTING_DOWN"]);
const ACTION = {
  start: routeErrors(ANY_ROUTE, ["MACHINE_NOT_FOUND", "INVALID_STATE_TRANSITION", "INSUFFICIENT_CAPACITY", "GUEST_ASSETS_MISSING", "SHUTTING_DOWN", "VMM_MISMATCH"]),
  stop: routeErrors(ANY_ROUTE, ["MACHINE_NOT_FOUND", "INVALID_STATE_TRANSITION", "SHUTTING_DOWN"]),
  // A restart of a machine that is not running is a start.
  restart: routeErrors(ANY_ROUTE, ["MACHINE_NOT_FOUND", "INVALID_STATE_TRANSITION", "SHUTTING_DOWN", "INSUFFICIENT_CAPACITY", "GUEST_ASSETS_MISSING", "VMM_MISMATCH"]),
};
const FREEZE = routeErrors(ANY_ROUTE, ["MACHINE_NOT_FOUND", "INVALID_STATE_TRANSITION", "SHUTTING_DOWN", "VMM_CONTROL_FAILED", "VMM_EXITED"]);
// Resume of a suspended machine is a restore: it can fail like a boot (MACHINE_FAILED: see last_error).
const SAVE = routeErrors(ANY_ROUTE, ["MACHINE_NOT_FOUND", "INVALID_STATE_TRANSITION", "SHUTTING_DOWN", "VMM_CONTROL_FAILED", "VMM_EXITED", "SNAPSHOT_FAILED", "MACHINE_FAILED", "WAIT_TIMEOUT", "INSUFFICIENT_CAPACITY", "VMM_MISMATCH"]);
const FORK = routeErrors(ANY_ROUTE, WITH_BODY, ["MACHINE_NOT_FOUND", "MACHINE_NOT_RUNNING", "SNAPSHOT_FAILED", "SHUTTING_DOWN", "INSUFFICIENT_CAPACITY", "PORT_UNAVAILABLE", "IMAGE_NOT_CACHED", "MACHINE_HAS_VOLUMES"]);
const WAIT = routeErrors(ANY_ROUTE, ["MACHINE_NOT_FOUND", "WAIT_TIMEOUT", "MACHINE_FAILED", "SHUTTING_DOWN"]);

export function machineRoutes(app: FastifyInstance, service: MachineServicePort): void {
  app.addHook("preHandler", bindMachineId);

  app.get<{ Querystring: ListMachinesQuery }>(
    "/machines",
    {
      config: LIST.config,
      schema: {
        tags,
        summary: "List machines",
        querystring: ListMachinesQuery,
        response: { 200: Type.Array(MACHINE_REF), ...LIST.responses },
      },
    },
    async (req, reply) => {
      const status = req.query.status?.split(",").filter(isMachineStatus);
      const list = await service.list(status ? { status } : {}, callContext(req, reply));
      return list.map(machineJson);
    },
  );

  app.post<{ Body: CreateMachineBody }>(
    "/machines",
    {
      config: CREATE.config,
      schema: {
        tags,
        summary: "Create a machine",
        description:
          "Creates a machine from the default root disk, or from an OCI `image` (pulled in the background: `image_pull` shows progress, " +
          "a failed pull makes the machine `failed` with the image error in `last_error`). With `start: true` it also starts booting it " +
          "(after the pull; poll `/wait`). An image's Entrypoint + Cmd run as the main process after each boot (output at `/logs`).",
        body: CreateMachineBody,
        response: { 201: MACHINE_REF, ...CREATE.responses },
      },
    },
    async (req, reply) => {
      const ctx = callContext(req, reply);
      const m = await service.create(createMachineRequest(req.body), ctx);
      return reply.code(201).send({ ...machineJson(m), access_token: await service.accessToken(m.id, ctx) });
    },
  );

  app.get<{ Params: MachineIdParams }>(
    "/machines/:id",
    { config: GET.config, schema: { tags, summary: "Get a machine", params: MachineIdParams, response: { 200: MACHINE_REF, ...GET.responses } } },
    async (req, reply) => machineJson(await service.get(req.params.id, callContext(req, reply))),
  );

  app.delete<{ Params: MachineIdParams }>(
    "/machines/:id",
    {
      config: DELETE.config,
      schema: {
        tags,
        summary: "Delete a machine",
        description: "Kills the VM if it runs and removes the machine and its disk.",
        params: MachineIdParams,
        response: { 204: Type.Null(), ...DELETE.responses },
      },
    },
    async (req, reply) => {
      await service.delete(req.params.id, callContext(req, reply));
      return reply.code(204).send();
    },
  );

  for (const action of ["start", "stop", "restart"] as const) {
    app.post<{ Params: MachineIdParams }>(
      `/machines/:id/${action}`,
      {
        config: ACTION[action].config,
        schema: {
          tags,
          summary: `${action[0]?.toUpperCase()}${action.slice(1)} a machine`,
          description: "Returns as soon as the status changed (202); use `/wait` for the outcome.",
          params: MachineIdParams,
          response: { 202: MACHINE_REF, ...ACTION[action].responses },
        },
      },
      async (req, reply) => {
        const m = await service[action](req.params.id, callContext(req, reply));
        return reply.code(202).send(machineJson(m));
      },
    );
  }

  const freeze = {
    pause: "Freezes the guest's vCPUs (memory and devices stay as they are) and answers once the machine is `paused`. " +
      "Exec, files and logs answer 409 MACHINE_PAUSED until it is resumed; stop resumes it first and powers it off, delete kills it. " +
      "409 INVALID_STATE_TRANSITION unless it is `running`.",
    resume: "Lets a paused machine's guest run again and answers once it is `running`, with the guest clock set from the host's " +
      "(it stands still while paused). A `suspended` machine is restored from disk, its processes alive, and the answer comes once it runs. " +
      "409 INVALID_STATE_TRANSITION unless it is `paused` or `suspended`.",
    suspend: "Saves a running or paused machine's memory and devices to disk and ends its VMM, giving its memory back; answers once it is " +
      "`suspended`. It survives daemon and host restarts. `resume` (or `start`) restores it with its processes alive; `stop` throws the saved state away. " +
      "409 INVALID_STATE_TRANSITION unless it is `running` or `paused`.",
  };
  for (const action of ["pause", "resume", "suspend"] as const) {
    const errors = action === "pause" ? FREEZE : SAVE;
    app.post<{ Params: MachineIdParams }>(
      `/machines/:id/${action}`,
      {
        config: errors.config,
        schema: {
          tags,
          summary: `${action[0]?.toUpperCase()}${action.slice(1)} a machine`,
          description: freeze[action],
          params: MachineIdParams,
          response: { 200: MACHINE_REF, ...errors.responses },
        },
      },
      async (req, reply) => machineJson(await service[action](req.params.id, callContext(req, reply))),
    );
  }

  app.post<{ Params: MachineIdParams; Body: ForkBody }>(
    "/machines/:id/fork",
    {
      config: FORK.config,
      schema: {
        tags,
        summary: "Fork a machine",
        description:
          "Clones a running or paused machine `count` times from one snapshot of it: each clone wakes up where the source was, with its " +
          "own disk, network, hostname (its id), RNG state and clock; the source goes on. Answers with the clones, `starting` " +
          "(`/wait` for `running`). All or nothing: if one clone cannot be created, none is kept.",
        params: MachineIdParams,
        body: ForkBody,
        response: { 201: Type.Array(MACHINE_REF), ...FORK.responses },
      },
    },
    async (req, reply) => {
      const clones = await service.fork(req.params.id, req.body?.count ?? 1, callContext(req, reply));
      return reply.code(201).send(clones.map(machineJson));
    },
  );

  app.get<{ Params: MachineIdParams; Querystring: WaitQuery }>(
    "/machines/:id/wait",
    {
      config: WAIT.config,
      schema: {
        tags,
        summary: "Wait for a status",
        description: "Answers when the machine reaches `status` (default running), or 408 WAIT_TIMEOUT after `timeout` seconds (default and maximum 30).",
        params: MachineIdParams,
        querystring: WaitQuery,
        response: { 200: MACHINE_REF, ...WAIT.responses },
      },
    },
    async (req, reply) => {
      const status: MachineStatus = req.query.status ?? "running";
      const timeoutMs = Math.round((req.query.timeout ?? 30) * 1000);
      return machineJson(await service.wait(req.params.id, status, timeoutMs, callContext(req, reply)));
    },
  );
}
