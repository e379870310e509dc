/**
 * Builds the Fastify app: validation from TypeBox schemas, OpenAPI at /openapi.json and Swagger UI
 * at /docs generated from those same schemas, bearer auth, and one error shape for every failure.
 * The app does not listen; the daemon does (and tests use `inject()`).
 */
import { tokenRoutes } from "./routes/tokens.js";
import type { Socket } from "node:net";
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from "fastify";
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import websocket from "@fastify/websocket";
import { ulid } from "ulid";
import { HyperfleetError } from "../core/errors.js";
import { registerAuth, type ApiKeyVerifier } from "./auth.js";
import { errorBody, handleError, handleNotFound } from "./errors.js";
import { httpStatus } from "./http-status.js";
import { BodyBudget, registerBodyBudget, serverTimeouts, type HttpLimits } from "./limits.js";
import { execRoutes } from "./routes/exec.js";
import { execWsRoutes } from "./routes/exec-ws.js";
import { processRoutes } from "./routes/processes.js";
import { secretRoutes } from "./routes/secrets.js";
import { EXEC_WS_MAX_MESSAGE, EXEC_WS_PROTOCOL } from "../contract/exec.js";
import { fileRoutes } from "./routes/files.js";
import { healthRoutes, type VmmInfoSource } from "./routes/health.js";
import { imageRoutes } from "./routes/images.js";
import { eventRoutes } from "./routes/events.js";
import { logRoutes } from "./routes/logs.js";
import { machineRoutes } from "./routes/machines.js";
import { spawnRoutes } from "./routes/spawn.js";
import { SPAWN_TAG, SPAWN_TAG_DESCRIPTION } from "../contract/spawn.js";
import { ErrorSchema } from "../contract/common.js";
import { ImageSchema } from "../contract/images.js";
import { MachineSchema } from "../contract/machine.js";
import type { ImageServicePort, MachineServicePort, SnapshotServicePort, VolumeServicePort } from "../core/ports/services.js";
import { snapshotRoutes } from "./routes/snapshots.js";
import { SnapshotSchema } from "../contract/snapshot.js";
import { fileTreeRoutes } from "./routes/file-tree.js";
import { volumeRoutes } from "./routes/volumes.js";
import { VolumeSchema } from "../contract/volume.js";
import { typeboxValidatorCompiler } from "./validation.js";

export interface AppOptions {
  service: MachineServicePort;
  images: ImageServicePort;
  snapshots: SnapshotServicePort;
  /** Volumes (docs/agents.md "Volumes"); absent: no /volumes routes. */
  volumes?: VolumeServicePort;
  logger: FastifyBaseLogger;
  /** null: authentication disabled (the config only allows that on loopback). */
  auth: ApiKeyVerifier | null;
  fileMaxSize: number;
  limits: HttpLimits;
  /** HYPERFLEET_EXEC_OUTPUT_MAX: bytes of stdout and of stderr an exec answers with at most. */
  execOutputMax: number;
  version: string;
  /** The VMM in use, for GET /health (cheap: the driver is made once and kept). */
  vmm: VmmInfoSource;
}

export async function buildApp(opts: AppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: opts.logger,
    genReqId: () => `req_${ulid()}`,
    logController: new LogController({ requestIdLogLabel: "request_id" }),
    // Everything a client can get wrong before routing (bad URL encoding, too-long params) goes
    // through the same mapping as route errors.
    frameworkErrors: (e, req, reply) => handleError(e, req, reply),
    clientErrorHandler: answerClientError,
    ...serverTimeouts(opts.limits.bodyTimeoutMs),
  });
  app.setValidatorCompiler(typeboxValidatorCompiler);
  // Many clients send `Content-Type: application/json` on every request, also without a body
  // (POST /start, DELETE). Treat an empty JSON body as no body; routes that need one then answer
  // INVALID_ARGUMENT. Everything else is Fastify's parser (with its prototype-poisoning checks).
  const parseJson = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (req, body, done) => {
    if (body === "") done(null, undefined);
    else parseJson(req, body.toString(), done);
  });
  app.setErrorHandler(handleError);
  app.setNotFoundHandler(handleNotFound);
  app.addSchema(ErrorSchema);
  app.addSchema(MachineSchema);
  app.addSchema(ImageSchema);
  app.addSchema(SnapshotSchema);
  app.addSchema(VolumeSchema);
  app.addHook("onRequest", (req, reply, done) => {
    void reply.header("x-request-id", req.id);
    done();
  });

  await app.register(swagger, {
    openapi: {
      openapi: "3.0.3",
      info: {
        title: "Hyperfleet API",
        version: opts.version,
        description: "MicroVMs driven over REST. Errors: `{ error: { code, message, field? } }`, codes in docs/errors.md.",
      },
      tags: [{ name: SPAWN_TAG, description: SPAWN_TAG_DESCRIPTION }],
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
      security: opts.auth ? [{ bearer: [] }] : [],
    },
    refResolver: { buildLocalReference: (json, _base, _frag, i) => (typeof json.$id === "string" ? json.$id : `def-${i}`) },
  });
  await app.register(swaggerUi, { routePrefix: "/docs" });
  app.get("/openapi.json", { schema: { hide: true } }, async () => app.swagger());

  // Before every route, so it sees upgrades first. A client offering our subprotocol gets it
  // (a browser requires one of those it offered back); a bearer.<key> one is never echoed.
  await app.register(websocket, {
    options: { maxPayload: EXEC_WS_MAX_MESSAGE, handleProtocols: (offered: Set<string>) => (offered.has(EXEC_WS_PROTOCOL) ? EXEC_WS_PROTOCOL : false) },
  });
  registerAuth(app, opts.auth);
  registerBodyBudget(app, new BodyBudget(opts.limits.bodyBudget));
  healthRoutes(app, { version: opts.version, startedAt: Date.now(), vmm: opts.vmm });
  await app.register(async (scope) => machineRoutes(scope, opts.service));
  await app.register(async (scope) => execRoutes(scope, opts.service, { bodyLimit: opts.limits.execMaxBody, outputMax: opts.execOutputMax }));
  await app.register(async (scope) => execWsRoutes(scope, opts.service));
  await app.register(async (scope) => processRoutes(scope, opts.service));
  await app.register(async (scope) => fileRoutes(scope, opts.service, { fileMaxSize: opts.fileMaxSize }));
  await app.register(async (scope) => fileTreeRoutes(scope, opts.service, { fileMaxSize: opts.fileMaxSize }));
  await app.register(async (scope) => logRoutes(scope, opts.service));
  await app.register(async (scope) => eventRoutes(scope, opts.service));
  await app.register(async (scope) => imageRoutes(scope, opts.images));
  await app.register(async (scope) => snapshotRoutes(scope, opts.snapshots));
  await app.register(async (scope) => spawnRoutes(scope, opts.service));
  await app.register(async (scope) => tokenRoutes(scope, opts.service));
  await app.register(async (scope) => secretRoutes(scope, opts.service));
  const volumes = opts.volumes;
  if (volumes) await app.register(async (scope) => volumeRoutes(scope, volumes));
  return app;
}

/**
 * Malformed HTTP (before Fastify sees a request): answer 400 with our body, then close. A request
 * not received within HYPERFLEET_BODY_TIMEOUT also lands here (Node's requestTimeout): 408, and
 * the socket is destroyed so the rest of the body is never read.
 */
function answerClientError(e: Error & { code?: string }, socket: Socket): void {
  const timedOut = e.code === "ERR_HTTP_REQUEST_TIMEOUT";
  if (timedOut && !canAnswer(socket)) {
    socket.destroy();
    return;
  }
  if (!socket.writable) return;
  const he = timedOut
    ? new HyperfleetError("REQUEST_TIMEOUT", "the request was not received in time (HYPERFLEET_BODY_TIMEOUT); send the body promptly")
    : new HyperfleetError("MALFORMED_REQUEST", `malformed HTTP request (${e.code ?? "parse error"})`);
  const body = JSON.stringify(errorBody(he));
  const reason = timedOut ? "Request Timeout" : "Bad Request";
  const answer = `HTTP/1.1 ${httpStatus(he.code)} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
  if (timedOut) socket.end(answer, () => socket.destroy());
  else socket.end(answer);
}

/** Like Node's own guard: no raw answer once the in-flight response has started. */
function canAnswer(socket: Socket): boolean {
  const res = (socket as Socket & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
  return socket.writable && res?.headersSent !== true;
}
