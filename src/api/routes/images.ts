/** The image cache: GET /images, POST /images/pull, DELETE /images/:ref. */
import type { FastifyInstance } from "fastify";
import { Type } from "@sinclair/typebox";
import { registryAuthInput } from "../requests.js";
import { ANY_ROUTE, IMAGE_PULL, routeErrors, WITH_BODY } from "../route-errors.js";
import { ImageRefParams, PullImageBody, type ImageJson } from "../../contract/images.js";
import { imageJson } from "../serialize.js";
import type { ImageServicePort } from "../../core/ports/services.js";
import { callContext } from "./context.js";
import { errorBody, toApiError } from "../errors.js";
import { httpStatus } from "../http-status.js";
import { pullStream, wantsNdjson } from "./pull-stream.js";

const tags = ["images"];
const IMAGE_REF = Type.Unsafe<ImageJson>({ $ref: "Image#" });

// GUEST_ASSETS_MISSING: the host cannot run images at all (src/images/catalog.ts).
const LIST = routeErrors(ANY_ROUTE, ["GUEST_ASSETS_MISSING"]);
const PULL = routeErrors(ANY_ROUTE, WITH_BODY, IMAGE_PULL, ["GUEST_ASSETS_MISSING"]);
const REMOVE = routeErrors(ANY_ROUTE, ["IMAGE_NOT_CACHED", "IMAGE_IN_USE", "HOST_DISK_FULL", "GUEST_ASSETS_MISSING"]);

export function imageRoutes(app: FastifyInstance, images: ImageServicePort): void {
  app.get(
    "/images",
    { config: LIST.config, schema: { tags, summary: "List cached images", description: "Most recently used first.", response: { 200: Type.Array(IMAGE_REF), ...LIST.responses } } },
    async (req, reply) => (await images.list(callContext(req, reply))).map(imageJson),
  );

  app.post<{ Body: PullImageBody }>(
    "/images/pull",
    {
      config: PULL.config,
      schema: {
        tags,
        summary: "Pull an image ahead of time",
        description:
          "Pulls and converts the image (at once if cached) and answers with it when done. The pull goes on if the client disconnects, " +
          "so a later `POST /machines` finds it cached.\n\n" +
          "With `Accept: application/x-ndjson` the answer is a stream of JSON lines instead: progress lines " +
          "`{\"phase\", \"layers_done\", \"layers_total\", \"bytes_done\", \"bytes_total\"}` (at most 10 a second; byte counts are " +
          "of the compressed download and never go down), then one last line, `{\"image\": Image}` or " +
          "`{\"error\": {\"code\", \"message\"}}` with the same codes as below. A pull that fails before its first progress line " +
          "(a bad reference) gets the plain error with its status; once the stream has started the status is 200, so the last line is the outcome.",
        body: PullImageBody,
        response: { 200: IMAGE_REF, ...PULL.responses },
      },
    },
    async (req, reply) => {
      const b = req.body;
      const registryAuth = registryAuthInput(b.registry_auth);
      const pullReq = { image: b.image, ...(registryAuth !== undefined && { registryAuth }), ...(b.image_size_mib !== undefined && { imageSizeMib: b.image_size_mib }) };
      if (!wantsNdjson(req.headers.accept)) return imageJson(await images.pull(pullReq, callContext(req, reply)));
      reply.hijack();
      const stream = pullStream(reply.raw, { "x-request-id": req.id });
      try {
        const img = await images.pull({ ...pullReq, onProgress: (p) => stream.progress(p) }, callContext(req, reply));
        stream.end({ image: imageJson(img) });
      } catch (e) {
        const he = toApiError(e);
        req.log.info({ code: he.code }, he.message);
        stream.end(errorBody(he), httpStatus(he.code));
      }
    },
  );

  app.delete<{ Params: ImageRefParams }>(
    "/images/:ref",
    {
      config: REMOVE.config,
      schema: {
        tags,
        summary: "Remove a cached image",
        description: "Removes every cached disk of the image, unless a machine uses it.",
        params: ImageRefParams,
        response: { 204: Type.Null(), ...REMOVE.responses },
      },
    },
    async (req, reply) => {
      await images.remove(req.params.ref, callContext(req, reply));
      return reply.code(204).send();
    },
  );
}
