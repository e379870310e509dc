/**
 * Hypercore's documented spawn API (../shared/seeds/hypercore-agents.md, issue 13 item 6): its
 * request and response shapes, kept apart from the machines contract so a client written for
 * Hypercore works unchanged. Every answer is wrapped in `{ response: ... }` as Hypercore's is.
 */
import { Type, type Static, type TSchema } from "@sinclair/typebox";
import { MachineStatusSchema, Nullable } from "./common.js";
import { imageRefString } from "./images.js";

export const SPAWN_TAG = "hypercore";
export const SPAWN_TAG_DESCRIPTION =
  "Hypercore-compatible API: thin aliases over /machines with Hypercore's documented shapes (docs/hypercore-compat.md)";

/** `{"443": 8080}`: host port -> guest port, as the Dockerfile's EXPOSE 8080 behind :443 in Hypercore's example. */
export const SpawnPorts = Type.Record(Type.String({ pattern: "^[0-9]{1,5}$" }), Type.Integer({ minimum: 1, maximum: 65535 }), {
  additionalProperties: false,
  maxProperties: 64,
  description: "Host port -> guest port, forwarded on HYPERFLEET_PORTS_BIND. Gives the machine a network",
  examples: [{ "8443": 8080 }],
});

export const SpawnBody = Type.Object(
  {
    image_ref: imageRefString("OCI image to boot; its Entrypoint + Cmd is the workload (output at GET /logs)"),
    cores: Type.Optional(Type.Integer({ minimum: 1, maximum: 32, default: 1, description: "vCPUs (default 1)" })),
    memory: Type.Optional(Type.Integer({ minimum: 128, maximum: 65536, default: 1024, description: "MiB (default 1024)" })),
    ports: Type.Optional(SpawnPorts),
    env: Type.Optional(
      Type.Array(Type.String({ maxLength: 65536 + 257 }), { maxItems: 256, description: "`KEY=value` entries", examples: [["API_KEY=..."]] }),
    ),
  },
  { additionalProperties: false },
);
export type SpawnBody = Static<typeof SpawnBody>;

export const SpawnIdQuery = Type.Object(
  { id: Type.String({ minLength: 1, maxLength: 100, description: "The id /spawn answered (a machine id, `vm_<ULID>`)" }) },
  { additionalProperties: false },
);
export type SpawnIdQuery = Static<typeof SpawnIdQuery>;

const wrapped = <T extends TSchema>(t: T) => Type.Object({ response: t });

const Url = Nullable(
  Type.String({
    description: "`http://<host>:<port>` of the first forwarded TCP port, else `http://<machine ip>`; null without a network",
    examples: ["http://127.0.0.1:8443"],
  }),
);

export const SpawnResponse = wrapped(Type.Object({ id: Type.String(), url: Url }));
export type SpawnResponse = Static<typeof SpawnResponse>;

export const SpawnListResponse = wrapped(
  Type.Array(
    Type.Object({
      id: Type.String(),
      image_ref: Nullable(Type.String()),
      cores: Type.Integer(),
      memory: Type.Integer({ description: "MiB" }),
      ports: Type.Record(Type.String(), Type.Integer(), { description: "Host port -> guest port (TCP)" }),
      url: Url,
      status: MachineStatusSchema,
    }),
  ),
);
export type SpawnListResponse = Static<typeof SpawnListResponse>;

export const SpawnStopResponse = wrapped(Type.Object({ id: Type.String() }));
export type SpawnStopResponse = Static<typeof SpawnStopResponse>;

export const SpawnLogsResponse = wrapped(Type.Object({ id: Type.String(), logs: Type.String({ description: "The workload's stdout and stderr, interleaved" }) }));
export type SpawnLogsResponse = Static<typeof SpawnLogsResponse>;
