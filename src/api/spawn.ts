/**
 * Hypercore's spawn shapes <-> the machines service (pure: no I/O). The request's `env` list and
 * `ports` map become the machine's env map and exposed ports; a machine becomes Hypercore's
 * `{id, url}` view. Checks a schema cannot express are INVALID_ARGUMENT naming the field.
 */
import { HyperfleetError } from "../core/errors.js";
import { ENV_NAME_PATTERN } from "../contract/common.js";
import type { SpawnBody, SpawnListResponse } from "../contract/spawn.js";
import type { CreateMachineRequest, MachineView } from "../core/ports/services.js";

const ENV_NAME = new RegExp(ENV_NAME_PATTERN);
const ENV_NAME_MAX = 256;

function invalid(field: string, message: string): HyperfleetError {
  return new HyperfleetError("INVALID_ARGUMENT", `${field}: ${message}`, { details: { field } });
}

/** `["K=V", ...]` -> `{K: V}`; the value may hold `=`; a later entry wins, as in a shell. */
export function spawnEnv(list: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {};
  list.forEach((entry, i) => {
    const eq = entry.indexOf("=");
    const name = eq < 0 ? entry : entry.slice(0, eq);
    if (eq < 0) throw invalid(`env[${i}]`, "must be KEY=value");
    if (!ENV_NAME.test(name) || name.length > ENV_NAME_MAX) throw invalid(`env[${i}]`, "the name must be letters, digits and '_', not starting with a digit");
    env[name] = entry.slice(eq + 1);
  });
  return env;
}

/** The body as a create request: started at once, named after a fresh suffix (Hypercore has no names). */
export function spawnRequest(b: SpawnBody, name: string): CreateMachineRequest {
  const ports = Object.entries(b.ports ?? {}).map(([host, guest]) => {
    const hostPort = Number(host);
    if (!Number.isInteger(hostPort) || hostPort < 1 || hostPort > 65535) throw invalid(`ports.${host}`, "the host port must be 1-65535");
    return { hostPort, guestPort: guest };
  });
  return {
    name,
    vcpuCount: b.cores ?? 1,
    memSizeMib: b.memory ?? 1024,
    env: spawnEnv(b.env ?? []),
    metadata: {},
    start: true,
    image: b.image_ref,
    // Forwarded ports need the machine's network; without ports HYPERFLEET_NETWORK_DEFAULT decides.
    ...(ports.length > 0 && { network: {}, exposedPorts: ports }),
    // Hypercore's agents are reached at their URL by anyone who has it, as the forwarded ports already are.
    ...(ports.length > 0 && { services: [...new Set(ports.map((p) => p.guestPort))].map((port) => ({ port, visibility: "public" as const })) }),
  };
}

/**
 * Where the workload is reached: the first forwarded TCP port on its host address (a wildcard
 * bind is reached on the name the client used for us), else the machine's own address. With the
 * daemon's proxy on, its URL instead, as Hypercore answers `<id>.<domain>` behind its TLS proxy.
 */
export function spawnUrl(m: MachineView, clientHost: string): string | null {
  // With the proxy on (HYPERFLEET_PROXY_ADDR), Hypercore's own shape: the first service's URL.
  const proxied = m.urls[0];
  if (proxied) return proxied.url;
  const p = m.exposedPorts.find((x) => x.protocol === "tcp");
  if (p) return `http://${p.hostIp === "0.0.0.0" ? clientHost : p.hostIp}:${p.hostPort}`;
  return m.network ? `http://${m.network.ip}` : null;
}

export function spawnListEntry(m: MachineView, clientHost: string): SpawnListResponse["response"][number] {
  const ports: Record<string, number> = {};
  for (const p of m.exposedPorts) if (p.protocol === "tcp") ports[String(p.hostPort)] = p.guestPort;
  return { id: m.id, image_ref: m.imageRef, cores: m.vcpuCount, memory: m.memSizeMib, ports, url: spawnUrl(m, clientHost), status: m.status };
}
