/**
 * Request bodies -> service requests, with the checks a schema cannot express: fields that need
 * `image`, and which registry credentials go together. Failures are INVALID_ARGUMENT with `field`.
 * The network's rules that need the configuration (CIDRs, ports, HYPERFLEET_NETWORK_DEFAULT) are
 * the service's (src/machines/create-network.ts), so every caller gets them.
 */
import { HyperfleetError } from "../core/errors.js";
import type { RegistryAuth } from "../contract/images.js";
import { IMAGE_ONLY_FIELDS, type CreateMachineBody } from "../contract/machine.js";
import type { CreateMachineRequest, RegistryAuthInput } from "../core/ports/services.js";
import type { ExposedPortRequest } from "../core/machine.js";
import type { HealthCheckInput } from "../core/health.js";

function invalid(field: string, message: string): HyperfleetError {
  return new HyperfleetError("INVALID_ARGUMENT", `${field}: ${message}`, { details: { field } });
}

/** `{username, password}` or `{token}`; anything else names the field to fix. */
export function registryAuthInput(a: RegistryAuth | undefined): RegistryAuthInput | undefined {
  if (a === undefined) return undefined;
  if (a.token !== undefined) {
    if (a.username !== undefined || a.password !== undefined) throw invalid("registry_auth.token", "give either a token or username and password, not both");
    return { token: a.token };
  }
  if (a.username === undefined) throw invalid("registry_auth.username", "is required (or give a token)");
  if (a.password === undefined) throw invalid("registry_auth.password", "is required");
  return { username: a.username, password: a.password };
}

export function createMachineRequest(b: CreateMachineBody): CreateMachineRequest {
  const registryAuth = registryAuthInput(b.registry_auth);
  if (b.image === undefined) {
    const stray = IMAGE_ONLY_FIELDS.find((f) => b[f] !== undefined);
    if (stray !== undefined) throw invalid(stray, "only applies to a machine created from an image; add 'image' or leave it out");
  }
  return {
    name: b.name,
    ...(b.vcpu_count !== undefined && { vcpuCount: b.vcpu_count }),
    ...(b.mem_size_mib !== undefined && { memSizeMib: b.mem_size_mib }),
    ...(b.snapshot !== undefined && { snapshot: b.snapshot }),
    env: b.env ?? {},
    ...(b.secrets !== undefined && { secrets: b.secrets }),
    metadata: b.metadata ?? {},
    start: b.start ?? false,
    ...(b.image !== undefined && { image: b.image }),
    ...(b.image_size_mib !== undefined && { imageSizeMib: b.image_size_mib }),
    ...(registryAuth !== undefined && { registryAuth }),
    ...(b.cmd !== undefined && { cmd: b.cmd }),
    ...(b.entrypoint !== undefined && { entrypoint: b.entrypoint }),
    ...(b.workdir !== undefined && { workdir: b.workdir }),
    ...(b.user !== undefined && { user: b.user }),
    ...(b.network !== undefined && { network: networkRequest(b.network) }),
    ...(b.exposed_ports !== undefined && { exposedPorts: b.exposed_ports.map(exposedPortRequest) }),
    ...(b.services !== undefined && { services: b.services.map((x) => ({ port: x.port, visibility: x.visibility ?? "private" })) }),
    ...(b.health_check !== undefined && { healthCheck: healthCheckInput(b.health_check) }),
    ...(b.restart_policy !== undefined && { restartPolicy: typeof b.restart_policy === "string" ? b.restart_policy : { policy: b.restart_policy.policy, ...(b.restart_policy.max_restarts !== undefined && { maxRestarts: b.restart_policy.max_restarts }) } }),
    ...(b.volumes !== undefined && { volumes: b.volumes.map((v) => ({ name: v.name, mount: v.mount, ...(v.read_only !== undefined && { readOnly: v.read_only }) })) }),
  };
}

function healthCheckInput(h: NonNullable<CreateMachineBody["health_check"]>): HealthCheckInput {
  return {
    ...(h.http !== undefined && { http: { port: h.http.port, ...(h.http.path !== undefined && { path: h.http.path }) } }),
    ...(h.exec !== undefined && { exec: h.exec }),
    ...(h.interval_s !== undefined && { intervalS: h.interval_s }),
    ...(h.timeout_s !== undefined && { timeoutS: h.timeout_s }),
    ...(h.retries !== undefined && { retries: h.retries }),
    ...(h.start_period_s !== undefined && { startPeriodS: h.start_period_s }),
  };
}

/** `true` is the default policy; `false` no network. */
function networkRequest(n: NonNullable<CreateMachineBody["network"]>): CreateMachineRequest["network"] {
  if (typeof n === "boolean") return n ? {} : false;
  return {
    ...(n.internet !== undefined && { internet: n.internet }),
    ...(n.allow_out !== undefined && { allowOut: n.allow_out }),
    ...(n.deny_out !== undefined && { denyOut: n.deny_out }),
    ...(n.private_network !== undefined && { privateNetwork: n.private_network }),
  };
}

function exposedPortRequest(p: NonNullable<CreateMachineBody["exposed_ports"]>[number]): ExposedPortRequest {
  return {
    guestPort: p.guest_port,
    ...(p.host_port !== undefined && { hostPort: p.host_port }),
    ...(p.host_ip !== undefined && { hostIp: p.host_ip }),
    ...(p.protocol !== undefined && { protocol: p.protocol }),
  };
}
