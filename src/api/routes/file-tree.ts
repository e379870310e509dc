/**
 * Directories and streamed transfers: list, mkdir, rename, and PUT of raw bytes or a tar archive.
 * A PUT's body is never buffered: it goes to the guest as it arrives, refused with 413
 * FILE_TOO_LARGE before a byte is read when its Content-Length is over HYPERFLEET_FILE_MAX_SIZE,
 * and as soon as a chunked body passes it. (Streamed downloads are GET /files, in files.ts.)
 */
import type { Readable } from "node:stream";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { HyperfleetError } from "../../core/errors.js";
import { MachineIdParams } from "../../contract/common.js";
import { ListQuery, ListResponse, MkdirBody, RenameBody, StreamUploadQuery, StreamUploadResponse, TarUploadResponse } from "../../contract/file-tree.js";
import type { MachineServicePort } from "../../core/ports/services.js";
import { ANY_ROUTE, FILE_OP, GUEST_CALL, routeErrors, WITH_BODY } from "../route-errors.js";
import { statJson } from "../serialize.js";
import { bindMachineId, callContext } from "./context.js";
import { uploadPath } from "./files.js";

const tags = ["files"];
const LIST = routeErrors(ANY_ROUTE, GUEST_CALL, FILE_OP);
const MKDIR = routeErrors(ANY_ROUTE, WITH_BODY, GUEST_CALL, FILE_OP);
const PUT = routeErrors(ANY_ROUTE, WITH_BODY, GUEST_CALL, FILE_OP);

declare module "fastify" {
  interface FastifyContextConfig {
    /** The handler streams the body itself: it is not counted in HYPERFLEET_BODY_BUDGET (src/api/limits.ts). */
    streamingBody?: boolean;
  }
}

function parseMode(mode: number | string | undefined): number | undefined {
  return typeof mode === "string" ? parseInt(mode, 8) : mode;
}

/** onRequest: a declared length over the limit is refused before the body is read. */
function refuseDeclaredOver(max: number) {
  return (req: FastifyRequest, reply: FastifyReply, done: (e?: Error) => void) => {
    const declared = Number(req.headers["content-length"]);
    if (Number.isFinite(declared) && declared > max) {
      closeAfter(reply);
      return done(new HyperfleetError("FILE_TOO_LARGE", `the body is ${declared} bytes; the limit is ${max} (HYPERFLEET_FILE_MAX_SIZE)`, { details: { field: "body", limit: max } }));
    }
    done();
  };
}

/**
 * The answer goes out before the body was read to its end: the connection is closed after it, so
 * the rest of the body is not read as the next request (and the client stops sending).
 */
function closeAfter(reply: FastifyReply): void {
  void reply.header("connection", "close");
}

/** The raw body as chunks, without destroying the request when the consumer stops early (the error answer must still go out). */
function rawBody(req: FastifyRequest): AsyncIterable<Buffer> {
  const body = req.body as Readable | undefined;
  if (!body || typeof (body as Partial<Readable>).iterator !== "function") {
    throw new HyperfleetError("UNSUPPORTED_MEDIA_TYPE", "send the file's bytes as the body with 'Content-Type: application/octet-stream' (or application/x-tar with format=tar), not JSON");
  }
  return body.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>;
}

export function fileTreeRoutes(app: FastifyInstance, service: MachineServicePort, opts: { fileMaxSize: number }): void {
  app.addHook("preHandler", bindMachineId);
  const max = opts.fileMaxSize;
  // Every body that is not JSON is handed to the handler unread (curl -T sends no Content-Type).
  app.addContentTypeParser("*", (_req, payload, done) => done(null, payload));

  app.get<{ Params: MachineIdParams; Querystring: ListQuery }>(
    "/machines/:id/files/list",
    {
      config: LIST.config,
      schema: {
        tags,
        summary: "List a directory",
        description: "Name, type, size, mode, owner and mtime of each entry (lstat: symlinks are reported with their target, not followed), sorted by name.",
        params: MachineIdParams,
        querystring: ListQuery,
        response: { 200: ListResponse, ...LIST.responses },
      },
    },
    async (req, reply) => {
      const { path } = req.query;
      const r = await service.listDir(req.params.id, path, req.query.limit ?? 10_000, callContext(req, reply));
      const entries = r.entries.map((e) => ({ name: e.name, ...statJson(path, e), ...(e.target !== undefined && { target: e.target }) }));
      return { path, entries: entries.map(({ path: _p, ...e }) => e), truncated: r.truncated };
    },
  );

  app.post<{ Params: MachineIdParams; Body: MkdirBody }>(
    "/machines/:id/files/mkdir",
    {
      config: MKDIR.config,
      schema: {
        tags,
        summary: "Create a directory",
        description: "With `parents` (the default) missing parents are created and an existing directory is no error.",
        params: MachineIdParams,
        body: MkdirBody,
        response: { 201: MkdirBody, ...MKDIR.responses },
      },
    },
    async (req, reply) => {
      const mode = parseMode(req.body.mode);
      const parents = req.body.parents ?? true;
      await service.mkdir(req.params.id, req.body.path, { parents, ...(mode !== undefined && { mode }) }, callContext(req, reply));
      return reply.code(201).send({ path: req.body.path, parents, ...(req.body.mode !== undefined && { mode: req.body.mode }) });
    },
  );

  app.post<{ Params: MachineIdParams; Body: RenameBody }>(
    "/machines/:id/files/rename",
    {
      config: MKDIR.config,
      schema: {
        tags,
        summary: "Rename or move a file or directory",
        description: "rename(2) inside the guest: within one filesystem. Without `overwrite` an existing `to` is 409 FILE_ALREADY_EXISTS.",
        params: MachineIdParams,
        body: RenameBody,
        response: { 200: RenameBody, ...MKDIR.responses },
      },
    },
    async (req, reply) => {
      const overwrite = req.body.overwrite ?? false;
      await service.rename(req.params.id, req.body.from, req.body.to, { noReplace: !overwrite }, callContext(req, reply));
      return { from: req.body.from, to: req.body.to, overwrite };
    },
  );

  app.put<{ Params: MachineIdParams; Querystring: StreamUploadQuery }>(
    "/machines/:id/files",
    {
      config: { ...PUT.config, streamingBody: true },
      onRequest: refuseDeclaredOver(max),
      schema: {
        tags,
        summary: "Upload raw bytes, or a tar archive into a directory",
        description:
          `The body is the file's bytes (application/octet-stream; no base64), written to \`path\` as it arrives (parents created, temp file + rename, fsync), ` +
          `or with \`format=tar\` a tar archive unpacked into the directory \`path\` (created if missing). At most ${max} bytes (HYPERFLEET_FILE_MAX_SIZE): ` +
          "a larger Content-Length is 413 FILE_TOO_LARGE before the body is read, a chunked body as soon as it passes the limit. " +
          "Tar entries with absolute paths or `..` components are refused (400 FILE_PATH_INVALID; entries before them stay); symlinks are " +
          "created after everything else, so no entry is written through one, and one below another of its symlinks or over a non-empty " +
          "directory is refused; hardlinks and special files are not created (counted in `skipped`). The body must arrive within HYPERFLEET_BODY_TIMEOUT.",
        params: MachineIdParams,
        querystring: StreamUploadQuery,
        response: {
          200: TarUploadResponse,
          201: StreamUploadResponse,
          ...PUT.responses,
        },
      },
    },
    async (req, reply) => {
      const ctx = callContext(req, reply);
      const { path, format } = req.query;
      try {
        const body = rawBody(req);
        if (format === "tar") {
          const r = await service.uploadTar(req.params.id, path, body, max, ctx);
          return await reply.code(200).send({ path, ...r });
        }
        const mode = parseMode(req.query.mode);
        const r = await service.uploadStream(req.params.id, uploadPath(path), body, { maxSize: max, ...(mode !== undefined && { mode }) }, ctx);
        return await reply.code(201).send({ path, size: r.size });
      } catch (e) {
        if (!req.raw.readableEnded) closeAfter(reply);
        throw e;
      }
    },
  );
}
