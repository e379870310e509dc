/** Background processes: POST/GET /machines/:id/processes, signal, output (docs/exec-stream.md). */
import { constants } from "node:os";
import { Readable } from "node:stream";
import type { FastifyInstance } from "fastify";
import { HyperfleetError } from "../../core/errors.js";
import type { MachineServicePort, ProcessView } from "../../core/ports/services.js";
import { MachineIdParams } from "../../contract/common.js";
import { LogsQuery } from "../../contract/machine.js";
import { ProcessList, ProcessParams, ProcessSchema, ProcessStartBody, SignalBody, type ProcessJson } from "../../contract/processes.js";
import { ANY_ROUTE, FILE_OP, GUEST_CALL, routeErrors, WITH_BODY } from "../route-errors.js";
import { bindMachineId, callContext } from "./context.js";

const tags = ["processes"];
const START = routeErrors(ANY_ROUTE, WITH_BODY, GUEST_CALL, FILE_OP, ["EXEC_NOT_FOUND", "EXEC_PERMISSION_DENIED", "NOT_SUPPORTED_YET"]);
const LIST = routeErrors(ANY_ROUTE, GUEST_CALL, FILE_OP);
const SIGNAL = routeErrors(ANY_ROUTE, WITH_BODY, GUEST_CALL, FILE_OP, ["PROCESS_NOT_FOUND", "PROCESS_NOT_RUNNING", "EXEC_NOT_FOUND", "EXEC_PERMISSION_DENIED", "EXEC_TIMEOUT"]);
const OUTPUT = routeErrors(ANY_ROUTE, GUEST_CALL, FILE_OP, ["PROCESS_NOT_FOUND"]);

function json(p: ProcessView): ProcessJson {
  return { pid: p.pid, command: p.command, status: p.status, exit_code: p.exitCode, signal: p.signal, started_at: p.startedAt, exited_at: p.exitedAt };
}

function signalNumber(s: number | string): number {
  if (typeof s === "number") return s;
  const n = (constants.signals as Record<string, number | undefined>)[s];
  if (n === undefined) throw new HyperfleetError("INVALID_ARGUMENT", `signal: unknown signal ${s}`, { details: { field: "signal" } });
  return n;
}

export function processRoutes(app: FastifyInstance, service: MachineServicePort): void {
  app.addHook("preHandler", bindMachineId);

  app.post<{ Params: MachineIdParams; Body: ProcessStartBody }>(
    "/machines/:id/processes",
    {
      config: START.config,
      schema: {
        tags,
        summary: "Start a background process",
        description:
          "Starts `command` in the running machine and answers once it runs; it outlives the request (and a daemon restart), " +
          "not the machine's boot. Its stdin is /dev/null; stdout and stderr go to a log in the guest, read with " +
          "GET .../processes/{pid}/output. The image's Env, WorkingDir and User are the defaults, as for exec.",
        params: MachineIdParams,
        body: ProcessStartBody,
        response: { 201: ProcessSchema, ...START.responses },
      },
    },
    async (req, reply) => {
      const b = req.body;
      if (b.tty !== undefined) {
        throw new HyperfleetError("NOT_SUPPORTED_YET", "tty: background processes cannot have a terminal yet; use GET /machines/{id}/exec/ws with tty", { details: { field: "tty" } });
      }
      const p = await service.startProcess(req.params.id, {
        command: b.command,
        ...(b.env !== undefined && { env: b.env }),
        ...(b.cwd !== undefined && { cwd: b.cwd }),
        ...(b.user !== undefined && { user: b.user }),
      });
      return reply.code(201).send(json(p));
    },
  );

  app.get<{ Params: MachineIdParams }>(
    "/machines/:id/processes",
    {
      config: LIST.config,
      schema: {
        tags,
        summary: "List background processes",
        description: "The processes started with POST .../processes in the machine's current boot, running and exited, oldest first.",
        params: MachineIdParams,
        response: { 200: ProcessList, ...LIST.responses },
      },
    },
    async (req) => ({ processes: (await service.listProcesses(req.params.id)).map(json) }),
  );

  app.post<{ Params: ProcessParams; Body: SignalBody }>(
    "/machines/:id/processes/:pid/signal",
    {
      config: SIGNAL.config,
      schema: {
        tags,
        summary: "Send a signal to a background process",
        description: "Sends the signal to the process's group (it leads its own). 409 PROCESS_NOT_RUNNING once it has exited.",
        params: ProcessParams,
        body: SignalBody,
        response: { 200: ProcessSchema, ...SIGNAL.responses },
      },
    },
    async (req) => json(await service.signalProcess(req.params.id, req.params.pid, signalNumber(req.body.signal))),
  );

  app.get<{ Params: ProcessParams; Querystring: LogsQuery }>(
    "/machines/:id/processes/:pid/output",
    {
      config: OUTPUT.config,
      schema: {
        tags,
        summary: "A background process's output",
        description:
          "Its stdout and stderr, interleaved, as text/plain. With `follow=true` the response streams new output and ends when the " +
          "process has exited and everything was sent, when the machine stops, or when the client disconnects. `tail=N`: the last N lines first.",
        params: ProcessParams,
        querystring: LogsQuery,
        produces: ["text/plain"],
        response: { 200: { description: "Output bytes", content: { "text/plain": { schema: { type: "string" } } } }, ...OUTPUT.responses },
      },
    },
    async (req, reply) => {
      const q = req.query;
      const out = await service.processOutput(req.params.id, req.params.pid, { follow: q.follow ?? false, ...(q.tail !== undefined && { tail: q.tail }) }, callContext(req, reply));
      void reply.type("text/plain; charset=utf-8").header("cache-control", "no-store");
      if (Buffer.isBuffer(out)) return reply.send(out);
      void reply.header("x-accel-buffering", "no");
      return reply.send(Readable.from(out, { objectMode: false }));
    },
  );
}
