/** The image cache: GET /images, POST /images/pull, DELETE /images/:ref. */
import type { FastifyInstance } from "fastify";
import { Type } from "@sinclair/typebox";
import { registryAuthInput } from "../requests.js";
import { errorResponses } from "../../contract/common.js";
import { ImageRefParams, PullImageBody, type ImageJson } from "../../contract/images.js";
import { imageJson } from "../serialize.js";
import type { ImageServicePort } from "../../core/ports/services.js";
import { callContext } from "./context.js";

const tags = ["images"];
const IMAGE_REF = Type.Unsafe<ImageJson>({ $ref: "Image#" });

export function imageRoutes(app: FastifyInstance, images: ImageServicePort): void {
  app.get(
    "/images",
    { schema: { tags, summary: "List cached images", description: "Most recently used first.", response: { 200: Type.Array(IMAGE_REF), ...errorResponses(503) } } },
    async (req, reply) => (await images.list(callContext(req, reply))).map(imageJson),
  );

  app.post<{ Body: PullImageBody }>(
    "/images/pull",
    {
      schema: {
        tags,
        summary: "Pull an image ahead of time",
        description:
          "Pulls and converts the image (at once if cached) and answers with it when done. The pull goes on if the client disconnects, " +
          "so a later `POST /machines` finds it cached. Registry errors: 400 IMAGE_UNAUTHORIZED / IMAGE_PLATFORM_UNSUPPORTED / " +
          "IMAGE_INVALID / IMAGE_TOO_LARGE, 404 IMAGE_NOT_FOUND, 503 IMAGE_REGISTRY_UNREACHABLE / IMAGE_PULL_FAILED / HOST_DISK_FULL.",
        body: PullImageBody,
        response: { 200: IMAGE_REF, ...errorResponses(404, 503) },
      },
    },
    async (req, reply) => {
      const b = req.body;
      const registryAuth = registryAuthInput(b.registry_auth);
      const img = await images.pull(
        { image: b.image, ...(registryAuth !== undefined && { registryAuth }), ...(b.image_size_mib !== undefined && { imageSizeMib: b.image_size_mib }) },
        callContext(req, reply),
      );
      return imageJson(img);
    },
  );

  app.delete<{ Params: ImageRefParams }>(
    "/images/:ref",
    {
      schema: {
        tags,
        summary: "Remove a cached image",
        description: "Removes every cached disk of the image. 409 IMAGE_IN_USE while a machine uses it; 404 IMAGE_NOT_FOUND when it is not cached.",
        params: ImageRefParams,
        response: { 204: Type.Null(), ...errorResponses(404, 409, 503) },
      },
    },
    async (req, reply) => {
      await images.remove(req.params.ref, callContext(req, reply));
      return reply.code(204).send();
    },
  );
}
