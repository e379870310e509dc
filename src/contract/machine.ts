/** Machine resource: create body, list/wait queries, and the machine as returned. */
import { Type, type Static } from "@sinclair/typebox";
import { MAIN_PROCESS_STATUSES, PULL_PHASES, PULL_STATUSES } from "../core/machine.js";
import { MACHINE_STATUSES } from "../core/machine-state.js";
import { EnvMap, MachineStatusSchema, Nullable } from "./common.js";
import { imageRefString, RegistryAuth } from "./images.js";
import { HealthCheckBody, HealthCheckSchema, HealthSchema, RestartPolicyBody, RestartPolicySchema } from "./health.js";
import { VolumeMountRequest } from "./volume.js";
import { MAX_VOLUMES_PER_MACHINE } from "../core/volume.js";

const NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$";
const STATUS_LIST_PATTERN = `^(${MACHINE_STATUSES.join("|")})(,(${MACHINE_STATUSES.join("|")}))*$`;

const IPV4_PATTERN = "^(\\d{1,3}\\.){3}\\d{1,3}$";
const CIDR_PATTERN = "^(\\d{1,3}\\.){3}\\d{1,3}(/\\d{1,2})?$";
/** Bounded: each entry is a rule in the VM's egress chain (src/network/policy.ts MAX_POLICY_CIDRS). */
const CidrList = (description: string) =>
  Type.Array(Type.String({ pattern: CIDR_PATTERN, maxLength: 18, errorMessage: "must be an IPv4 address or CIDR like 10.0.0.0/8" }), {
    maxItems: 64,
    description,
    examples: [["10.0.0.0/8"]],
  });

/** The request's `network` object (docs/adr/0008); every field optional. */
const NetworkRequest = Type.Object(
  {
    internet: Type.Optional(Type.Boolean({ default: true, description: "Egress to the internet (NAT through the host); default true" })),
    allow_out: Type.Optional(
      CidrList("Reachable even with `internet: false` and despite `deny_out` or the always-denied ranges (link-local incl. 169.254.169.254, multicast); never other machines, and the host only where a CIDR covers its address (never 127.0.0.0/8). Up to 64"),
    ),
    deny_out: Type.Optional(CidrList("Never reachable (unless also in `allow_out`). Up to 64")),
    private_network: Type.Optional(
      Type.String({
        pattern: "^[a-z0-9][a-z0-9_-]{0,47}$",
        errorMessage: "must be 1-48 lowercase letters, digits, '_' or '-', starting with a letter or digit",
        description: "Machines naming the same private network reach each other by their `network.ip`; other machines never do",
        examples: ["backend"],
      }),
    ),
  },
  { additionalProperties: false },
);
const Network = Type.Union([Type.Boolean(), NetworkRequest], {
  errorMessage: "must be false, true, or an object with internet, allow_out, deny_out, private_network",
  description:
    "The machine's network, fixed at create: `false` for none; `true` or an object (its fields default) for one; absent: HYPERFLEET_NETWORK_DEFAULT decides (on unless the operator turned it off), with the default policy",
});
const ExposedPort = Type.Object(
  {
    guest_port: Type.Integer({ minimum: 1, maximum: 65535, description: "Port inside the machine" }),
    host_port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: "Port on the host; absent: the lowest free one of HYPERFLEET_PORT_RANGE" })),
    host_ip: Type.Optional(
      Type.String({
        pattern: IPV4_PATTERN,
        maxLength: 15,
        errorMessage: "must be an IPv4 address",
        description: "Host address to listen on: one of the host's own, or 0.0.0.0 for all; default HYPERFLEET_PORTS_BIND (127.0.0.1)",
        examples: ["127.0.0.1"],
      }),
    ),
    protocol: Type.Optional(Type.Union([Type.Literal("tcp"), Type.Literal("udp")], { default: "tcp" })),
  },
  { additionalProperties: false },
);

/** At most this many proxied services per machine (each is a route the proxy answers). */
export const MAX_SERVICES = 16;
const Service = Type.Object(
  {
    port: Type.Integer({ minimum: 1, maximum: 65535, description: "Guest port served at `https://<port>-<id>.<domain>`" }),
    visibility: Type.Optional(
      Type.Union([Type.Literal("public"), Type.Literal("private")], {
        default: "private",
        description: "`private` (default): a request needs the machine's access token (header `X-Hyperfleet-Token` or cookie `hf_token`); `public`: anyone reaching the proxy",
      }),
    ),
  },
  { additionalProperties: false },
);

/** An argv override; empty is allowed (`entrypoint: []` clears the image's, as `--entrypoint ""`). */
const ArgvOverride = (description: string) =>
  Type.Array(Type.String({ maxLength: 65536 }), { maxItems: 4096, description, examples: [["/bin/sh", "-c", "echo hi"]] });


/** Bounds of a machine's secrets (the total, 256 KiB, is checked by the service: SECRETS_TOO_LARGE). */
export const SECRETS_MAX_COUNT = 64;
export const SECRET_VALUE_MAX = 65536;
export const SECRETS_TOTAL_MAX = 262144;
export const SECRET_NAME_PATTERN = "^[A-Za-z_][A-Za-z0-9_]{0,127}$";
export const SecretsMap = Type.Record(
  Type.String({ pattern: SECRET_NAME_PATTERN }),
  Type.String({ maxLength: SECRET_VALUE_MAX, pattern: "^[^\\u0000]*$", errorMessage: "must be a string of at most 65536 characters without NUL" }),
  {
    additionalProperties: false,
    maxProperties: SECRETS_MAX_COUNT,
    description:
      "Secrets (NAME -> value; names like env names, up to 128 characters; at most 64, each value at most 64 KiB, 256 KiB in all). " +
      "Encrypted at rest and never returned (the machine shows `secret_names`); the main process gets them in its environment " +
      "(over `env` of the same name) and every process can read them as /run/secrets/NAME (tmpfs, 0400, owned by the main process's user)",
  },
);

export const SetSecretsBody = Type.Object({ secrets: SecretsMap }, { additionalProperties: false });
export type SetSecretsBody = Static<typeof SetSecretsBody>;

export const CreateMachineBody = Type.Object(
  {
    name: Type.String({ pattern: NAME_PATTERN, errorMessage: "must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit", description: "Unique name: letters, digits, `.`, `_`, `-`; up to 63 characters", examples: ["my-vm"] }),
    vcpu_count: Type.Optional(Type.Integer({ minimum: 1, maximum: 32, examples: [1], description: "Required, unless `snapshot` is given (then its source's)" })),
    mem_size_mib: Type.Optional(Type.Integer({ minimum: 128, maximum: 65536, examples: [256], description: "Required, unless `snapshot` is given (then its source's)" })),
    snapshot: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 64,
        description:
          "Start from this snapshot (`snap_...`, see /snapshots) instead of booting: the machine wakes up where its source was, " +
          "with its own disk, network, hostname (its id), RNG state and clock. Shape, image and network presence come from the snapshot " +
          "(400 SNAPSHOT_INCOMPATIBLE if the request asks for others). Its first start restores it; a later start after a stop boots it afresh.",
        examples: ["snap_01J9Z6Y8W2V4T0S5R3Q1P7N9M8"],
      }),
    ),
    image: Type.Optional(
      imageRefString("OCI image to boot (`alpine:latest`, `registry:5000/team/app@sha256:...`). The pull starts at once in the background; see `image_pull`."),
    ),
    image_size_mib: Type.Optional(Type.Integer({ minimum: 64, maximum: 1048576, description: "Root disk size for the image (default: its content plus 50 %, at least 64 MiB more)" })),
    registry_auth: Type.Optional(RegistryAuth),
    cmd: Type.Optional(ArgvOverride("Replaces the image's Cmd")),
    entrypoint: Type.Optional(ArgvOverride("Replaces the image's Entrypoint; the image's Cmd is then dropped unless `cmd` is given")),
    workdir: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, pattern: "^/[^\\u0000]*$", description: "Replaces the image's WorkingDir (main process and exec); absolute" })),
    user: Type.Optional(Type.String({ minLength: 1, maxLength: 64, pattern: "^[A-Za-z0-9_.:-]+$", description: "Replaces the image's User (main process and exec): name, uid or uid:gid" })),
    network: Type.Optional(Network),
    exposed_ports: Type.Optional(
      Type.Array(ExposedPort, {
        maxItems: 64,
        description: "Host ports forwarded to the machine (needs a network). A host port taken by another machine or a host process is 409 PORT_UNAVAILABLE",
      }),
    ),
    env: Type.Optional(EnvMap),
    secrets: Type.Optional(SecretsMap),
    metadata: Type.Optional(
      Type.Record(Type.String({ minLength: 1, maxLength: 128 }), Type.String({ maxLength: 4096 }), {
        maxProperties: 64,
        description: "Free-form labels, returned as given",
      }),
    ),
    services: Type.Optional(
      Type.Array(Service, {
        maxItems: MAX_SERVICES,
        description:
          "Guest ports served by the daemon's proxy (HYPERFLEET_PROXY_ADDR) at `https://<port>-<id>.<domain>`; the first also at `https://<name>.<domain>`. " +
          "Needs a network (400 SERVICE_NEEDS_NETWORK). Each port once; at most 16",
      }),
    ),
    start: Type.Optional(Type.Boolean({ default: false, description: "Start the machine right after creating it" })),
    health_check: Type.Optional(HealthCheckBody),
    restart_policy: Type.Optional(RestartPolicyBody),
    volumes: Type.Optional(
      Type.Array(VolumeMountRequest, {
        maxItems: MAX_VOLUMES_PER_MACHINE,
        description:
          "Volumes the machine holds from create to delete and mounts at each boot. A volume has one writer at a time: one held by another machine is 409 VOLUME_IN_USE, an unknown one 404 VOLUME_NOT_FOUND. Up to 8",
      }),
    ),
  },
  { additionalProperties: false },
);
export type CreateMachineBody = Static<typeof CreateMachineBody>;

/** Body fields that only mean something with `image`. */
export const IMAGE_ONLY_FIELDS = ["image_size_mib", "registry_auth", "cmd", "entrypoint", "workdir", "user"] as const;

export const LogsQuery = Type.Object(
  {
    follow: Type.Optional(Type.Boolean({ default: false, description: "Keep streaming new output until the process exits, the machine stops, or the client disconnects" })),
    tail: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000, description: "Start with only the last N lines" })),
  },
  { additionalProperties: false },
);
export type LogsQuery = Static<typeof LogsQuery>;

export const ListMachinesQuery = Type.Object(
  {
    status: Type.Optional(
      Type.String({
        pattern: STATUS_LIST_PATTERN,
        description: "One status or a comma list",
        examples: ["running", "running,starting"],
        errorMessage: `must be one or more of ${MACHINE_STATUSES.join(", ")}, separated by commas`,
      }),
    ),
  },
  { additionalProperties: false },
);
export type ListMachinesQuery = Static<typeof ListMachinesQuery>;

export const WaitQuery = Type.Object(
  {
    status: Type.Optional(Type.Union(MACHINE_STATUSES.map((s) => Type.Literal(s)), { default: "running" })),
    timeout: Type.Optional(Type.Number({ minimum: 0, maximum: 30, default: 30, description: "Seconds (default and maximum 30)" })),
  },
  { additionalProperties: false },
);
export type WaitQuery = Static<typeof WaitQuery>;

const NullableString = Nullable(Type.String());
const NullableInt = Nullable(Type.Integer());
const ErrorRef = Nullable(Type.Object({ code: Type.String(), message: Type.String() }));

const NetworkSchema = Type.Object(
  {
    ip: Type.String({ description: "The machine's address: what the host and private-network peers reach it by (the guest itself sees 169.254.0.21)" }),
    gateway: Type.String({ description: "The host's end of the machine's link" }),
    mac: Type.String(),
    dns: Type.Array(Type.String(), { description: "Resolvers the guest uses (HYPERFLEET_DNS, else the host's); empty when none was found" }),
    internet: Type.Boolean(),
    allow_out: Type.Array(Type.String()),
    deny_out: Type.Array(Type.String()),
    private_network: NullableString,
  },
  { description: "The machine's network, assigned at create and kept until delete; null: none" },
);

const ExposedPortSchema = Type.Object({
  guest_port: Type.Integer(),
  host_port: Type.Integer(),
  host_ip: Type.String({ description: "0.0.0.0: every address of the host" }),
  protocol: Type.Union([Type.Literal("tcp"), Type.Literal("udp")]),
});

const ServiceUrlSchema = Type.Object({
  port: Type.Integer(),
  url: Type.String({ examples: ["https://8080-vm_01j9z6y8w2v4t0s5r3q1p7n9m8.hf.localhost"] }),
  visibility: Type.Union([Type.Literal("public"), Type.Literal("private")]),
});

/** `GET /machines/{id}/token` and its rotation. */
export const AccessTokenSchema = Type.Object({
  token: Type.String({ description: "Send as header `X-Hyperfleet-Token`, cookie `hf_token`, or once as `?hf_token=` (sets the cookie)" }),
});
export type AccessTokenJson = Static<typeof AccessTokenSchema>;

const ImagePullSchema = Type.Object(
  {
    status: Type.Union(PULL_STATUSES.map((s) => Type.Literal(s))),
    phase: Type.Union(PULL_PHASES.map((p) => Type.Literal(p))),
    layers_done: Type.Integer(),
    layers_total: Type.Integer(),
    bytes_done: Type.Integer({ description: "Downloaded bytes (compressed layers)" }),
    bytes_total: Type.Integer(),
    error: ErrorRef,
    started_at: Type.String(),
    finished_at: NullableString,
  },
  { description: "The machine's image pull: live while it runs, then its outcome" },
);

const MainProcessSchema = Type.Object(
  {
    status: Type.Union(MAIN_PROCESS_STATUSES.map((s) => Type.Literal(s)), { description: "`failed`: it could not be started" }),
    pid: NullableInt,
    exit_code: Nullable(Type.Integer({ description: "null while running or when killed by a signal" })),
    signal: NullableInt,
    started_at: NullableString,
    exited_at: NullableString,
    error: ErrorRef,
  },
  { description: "The image's Entrypoint + Cmd, started after each boot; output at /machines/{id}/logs. Only while running, for a machine whose image has a command." },
);

export const MachineSchema = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    status: MachineStatusSchema,
    vcpu_count: Type.Integer(),
    mem_size_mib: Type.Integer(),
    image_ref: NullableString,
    kernel_image_path: NullableString,
    initrd_path: NullableString,
    kernel_args: Nullable(Type.String({ description: "null: the default fast-boot command line" })),
    rootfs_path: Nullable(Type.String({ description: "Base root disk; the machine writes to its own overlay" })),
    pid: Nullable(Type.Integer({ description: "VMM process id while it runs" })),
    network: Nullable(NetworkSchema),
    exposed_ports: Type.Array(ExposedPortSchema, { description: "Sorted by protocol, then host port" }),
    env: Type.Record(Type.String(), Type.String()),
    metadata: Type.Record(Type.String(), Type.String()),
    last_error: Nullable(Type.Object({ code: Type.String(), message: Type.String() })),
    created_at: Type.String({ description: "ISO-8601" }),
    updated_at: Type.String(),
    status_changed_at: Type.String(),
    started_at: NullableString,
    stopped_at: NullableString,
    image_digest: Nullable(Type.String({ description: "Manifest digest, once the image is pulled" })),
    image_size_mib: NullableInt,
    image_pull: Nullable(ImagePullSchema),
    cmd: Nullable(Type.Array(Type.String())),
    entrypoint: Nullable(Type.Array(Type.String())),
    workdir: NullableString,
    user: NullableString,
    main_process: Nullable(MainProcessSchema),
    snapshot_id: Nullable(Type.String({ description: "The snapshot the machine was created from (it cannot be deleted while the machine exists)" })),
    vmm: Type.Union([Type.Literal("qemu"), Type.Literal("firecracker")], {
      description: "The VMM the machine was created under (a clone: its snapshot's). Only a daemon running that VMM boots or restores it (else 409 VMM_MISMATCH); GET /health names the daemon's.",
    }),
    urls: Type.Array(ServiceUrlSchema, { description: "Its services' proxy URLs, in `services` order; empty when the daemon's proxy is off" }),
    name_url: Nullable(
      Type.String({
        description:
          "`https://<name>.<domain>`: its first service by the machine's name. null when the proxy is off, the machine serves no port, " +
          "or its name cannot be a host label (it has a '.', or reads as `<port>-<...>` or as a machine id)",
      }),
    ),
    access_token: Type.Optional(Type.String({ description: "Only in the create response: the token private services need (also GET /machines/{id}/token)" })),
    secret_names: Type.Array(Type.String(), { description: "Names of the machine's secrets, sorted; their values are never returned" }),
    health_check: Nullable(HealthCheckSchema),
    health: HealthSchema,
    restart_policy: RestartPolicySchema,
    restart_count: Type.Integer({ description: "Restarts the restart policy made since the machine was created (main process or VM)" }),
    volumes: Type.Array(
      Type.Object({ id: Type.String(), name: Type.String(), mount: Type.String(), read_only: Type.Boolean() }),
      { description: "Volumes it holds and mounts at each boot, in disk order" },
    ),
  },
  { $id: "Machine" },
);

export const ForkBody = Type.Object(
  {
    count: Type.Optional(Type.Integer({ minimum: 1, maximum: 64, default: 1, description: "How many clones (default 1, at most 64)" })),
  },
  { additionalProperties: false },
);
export type ForkBody = Static<typeof ForkBody>;
export type MachineJson = Static<typeof MachineSchema>;
