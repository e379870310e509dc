/** File transfer: upload, download (JSON/base64 or raw bytes), stat, delete. */
import type { FastifyInstance } from "fastify";
import { Type } from "@sinclair/typebox";
import { HyperfleetError } from "../../core/errors.js";
import type { ErrorRouteConfig } from "../errors.js";
import { MachineIdParams } from "../../contract/common.js";
import { ANY_ROUTE, FILE_OP, GUEST_CALL, routeErrors, WITH_BODY } from "../route-errors.js";
import { Readable } from "node:stream";
import { DownloadQuery } from "../../contract/file-tree.js";
import {
  DeleteFileQuery,
  DownloadResponse,
  PathQuery,
  StatResponse,
  UploadBody,
  UploadResponse,
} from "../../contract/files.js";
import { statJson } from "../serialize.js";
import type { MachineServicePort } from "../../core/ports/services.js";
import { bindMachineId, callContext } from "./context.js";

const tags = ["files"];
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Strict base64 (standard alphabet, padded): a typo must not silently upload different bytes. */
export function decodeBase64(s: string, field: string): Buffer {
  if (s.length % 4 !== 0 || !BASE64.test(s)) {
    throw new HyperfleetError("INVALID_ARGUMENT", `${field}: must be standard base64 with padding`, { details: { field } });
  }
  return Buffer.from(s, "base64");
}

function badPath(message: string): HyperfleetError {
  return new HyperfleetError("INVALID_ARGUMENT", `path: ${message}`, { details: { field: "path" } });
}

/** Components of an absolute path, empty ones (from `//` or a trailing `/`) dropped. */
function components(path: string): string[] {
  return path.split("/").filter((c) => c !== "");
}

/** An upload writes a file: the path must name one, not `/` or a directory (`/tmp/`, `/tmp/.`). */
export function uploadPath(path: string): string {
  const parts = components(path);
  const last = parts.at(-1);
  if (last === undefined || last === "." || last === ".." || path.endsWith("/")) {
    throw badPath("must name a file, not a directory (e.g. /tmp/hello.txt)");
  }
  return path;
}

/**
 * The path a delete sends to the guest. `/` is refused here, before anything reaches the guest (a
 * recursive delete would wipe the machine's root filesystem), and so is every spelling that could
 * reach it: `.`/`..` components are refused and `//` or a trailing `/` dropped, because the guest
 * resolves `/link/` and `/link/.` through a symlink to `/`, but removes `/link` itself.
 */
export function deletePath(path: string): string {
  const parts = components(path);
  if (parts.some((c) => c === "." || c === "..")) throw badPath("must not contain '.' or '..' components when deleting; give the path itself");
  if (parts.length === 0) throw badPath("refusing to delete '/', the machine's root filesystem");
  return `/${parts.join("/")}`;
}

function parseMode(mode: number | string | undefined): number | undefined {
  return typeof mode === "string" ? parseInt(mode, 8) : mode;
}

/** Largest JSON upload body for a file of maxSize bytes: base64 grows by 4/3, plus room for the rest. */
export function uploadBodyLimit(maxSize: number): number {
  return Math.ceil(maxSize / 3) * 4 + 64 * 1024;
}

const UPLOAD = routeErrors(ANY_ROUTE, WITH_BODY, GUEST_CALL, FILE_OP);
const DOWNLOAD = routeErrors(ANY_ROUTE, GUEST_CALL, FILE_OP);
const STAT = routeErrors(ANY_ROUTE, GUEST_CALL, FILE_OP);
const REMOVE = routeErrors(ANY_ROUTE, GUEST_CALL, FILE_OP);

export function fileRoutes(app: FastifyInstance, service: MachineServicePort, opts: { fileMaxSize: number }): void {
  app.addHook("preHandler", bindMachineId);
  const max = opts.fileMaxSize;
  const tooLarge: ErrorRouteConfig = { bodyTooLargeCode: "FILE_TOO_LARGE" };

  app.post<{ Params: MachineIdParams; Body: UploadBody }>(
    "/machines/:id/files",
    {
      bodyLimit: uploadBodyLimit(max),
      config: { ...tooLarge, ...UPLOAD.config },
      schema: {
        tags,
        summary: "Upload a file",
        description: `Writes base64 \`content\` to \`path\` (parent directories are created). At most ${max} bytes (HYPERFLEET_FILE_MAX_SIZE).`,
        params: MachineIdParams,
        body: UploadBody,
        response: { 201: UploadResponse, ...UPLOAD.responses },
      },
    },
    async (req, reply) => {
      const data = decodeBase64(req.body.content, "content");
      if (data.length > max) {
        throw new HyperfleetError("FILE_TOO_LARGE", `the file is ${data.length} bytes; the limit is ${max} (HYPERFLEET_FILE_MAX_SIZE)`, {
          details: { field: "content" },
        });
      }
      const r = await service.writeFile(req.params.id, uploadPath(req.body.path), data, parseMode(req.body.mode), callContext(req, reply));
      return reply.code(201).send({ path: req.body.path, size: r.size });
    },
  );

  app.get<{ Params: MachineIdParams; Querystring: DownloadQuery }>(
    "/machines/:id/files",
    {
      config: DOWNLOAD.config,
      schema: {
        tags,
        summary: "Download a file",
        description:
          "JSON with base64 content; with `Accept: application/octet-stream` the raw bytes, streamed from the guest as the client " +
          "reads them (chunked, bounded daemon memory whatever the size); with `format=tar` the file or directory tree as a tar " +
          "stream (application/x-tar, entries named from the path's last component, symlinks as symlinks, never followed). " +
          `More than ${max} bytes (HYPERFLEET_FILE_MAX_SIZE) in a file is 413 FILE_TOO_LARGE, also for files whose size is not known ` +
          "beforehand (/proc, whose stat says 0: such a file is read whole before the answer, the guest sending at most one byte more than the limit). The read is cancelled in the guest " +
          "when the client disconnects or a step with the guest exceeds HYPERFLEET_FILE_TRANSFER_TIMEOUT (504 FILE_TRANSFER_TIMEOUT).",
        params: MachineIdParams,
        querystring: DownloadQuery,
        response: {
          200: {
            content: {
              "application/json": { schema: DownloadResponse },
              "application/octet-stream": { schema: Type.String({ format: "binary" }) },
              "application/x-tar": { schema: Type.String({ format: "binary" }) },
            },
          },
          ...DOWNLOAD.responses,
        },
      },
    },
    async (req, reply) => {
      const ctx = callContext(req, reply);
      if (req.query.format === "tar") {
        const body = await service.openTarDownload(req.params.id, req.query.path, max, ctx);
        return reply.type("application/x-tar").send(asStream(body));
      }
      if (wantsRaw(req.headers.accept)) {
        const { body } = await service.openDownload(req.params.id, req.query.path, max, ctx);
        return reply.type("application/octet-stream").send(asStream(body));
      }
      const data = await service.readFile(req.params.id, req.query.path, max, ctx);
      return reply.type("application/json").send({ path: req.query.path, size: data.length, content: data.toString("base64") });
    },
  );

  app.get<{ Params: MachineIdParams; Querystring: PathQuery }>(
    "/machines/:id/files/stat",
    {
      config: STAT.config,
      schema: {
        tags,
        summary: "File info",
        params: MachineIdParams,
        querystring: PathQuery,
        response: { 200: StatResponse, ...STAT.responses },
      },
    },
    async (req, reply) => statJson(req.query.path, await service.stat(req.params.id, req.query.path, callContext(req, reply))),
  );

  app.delete<{ Params: MachineIdParams; Querystring: DeleteFileQuery }>(
    "/machines/:id/files",
    {
      config: REMOVE.config,
      schema: {
        tags,
        summary: "Delete a file",
        params: MachineIdParams,
        querystring: DeleteFileQuery,
        response: { 204: Type.Null(), ...REMOVE.responses },
      },
    },
    async (req, reply) => {
      await service.removeFile(req.params.id, deletePath(req.query.path), req.query.recursive ?? false, callContext(req, reply));
      return reply.code(204).send();
    },
  );
}

/** A byte stream that pulls the next chunk only when the socket wants more (one chunk of slack). */
function asStream(body: AsyncIterable<Buffer>): Readable {
  return Readable.from(body, { objectMode: false, highWaterMark: 1 });
}

/** Raw bytes only when asked for explicitly; JSON stays the default (also for `*\/*`). */
function wantsRaw(accept: string | undefined): boolean {
  return accept !== undefined && /(^|,)\s*application\/octet-stream\s*(;|,|$)/i.test(accept);
}
