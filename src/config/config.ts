/**
 * The daemon's configuration: one typed, validated, frozen object built from the environment at
 * startup. This is the only module that reads `process.env`; everything else gets a `Config` (or
 * the slice it needs) injected. Variable names, defaults and meanings: src/config/README.md.
 */
import { isIP } from "node:net";
import { availableParallelism } from "node:os";
import type { Capacity } from "../core/capacity.js";
import { join } from "node:path";
import { HyperfleetError } from "../core/errors.js";
import { err, ok, type Result } from "../core/result.js";
import { EnvReader, type ConfigProblem, type Env } from "./env-reader.js";
import { defaultCapacity, hostFacts, type HostFacts } from "./capacity.js";
import { defaultAgentBinary, readMirrors, readRegistryHosts } from "./registries.js";
import { readNetwork, type NetworkConfig } from "./network.js";
import { readJailer, type JailerConfig } from "./jailer.js";
import { readProxy, type ProxyConfig } from "./proxy.js";
import { readSecretKey } from "./secrets.js";

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Shortest API key we accept from HYPERFLEET_API_KEY; generated keys are far longer. */
export const MIN_API_KEY_LENGTH = 16;

export const ACCELS = ["auto", "kvm", "tcg"] as const;
export type AccelChoice = (typeof ACCELS)[number];

export const VMMS = ["auto", "qemu", "firecracker"] as const;
export type VmmChoiceName = (typeof VMMS)[number];

/** Default restore slots per CPU (HYPERFLEET_MAX_CONCURRENT_RESTORES); measured in docs/snapshots.md, "Costs". */
export const RESTORES_PER_CPU = 4;

export interface Config {
  readonly port: number;
  readonly host: string;
  readonly logLevel: LogLevel;
  /** Database, per-VM run dirs (`<dataDir>/machines/<id>`) and, by default, the guest assets. */
  readonly dataDir: string;
  /** Where `assets.json` (from `npm run setup`) is looked up; defaults to dataDir. */
  readonly assetsDir: string;
  /** Base of per-VM run dirs (sockets, pidfile, overlay disk); null means `<dataDir>/machines`. */
  readonly socketDir: string | null;
  /** Guest overrides; null means "take it from the guest assets manifest". */
  readonly guest: {
    readonly kernelImagePath: string | null;
    readonly initrdPath: string | null;
    readonly kernelArgs: string | null;
    readonly rootfsPath: string | null;
  };
  /** QEMU accelerator; `auto` boots a KVM probe once and falls back to TCG. */
  readonly accel: AccelChoice;
  /** Which VMM runs the VMs; `auto`: Firecracker when its binary is found and a KVM probe boots, else QEMU. */
  readonly vmm: VmmChoiceName;
  /** The firecracker binary (a path, or a name looked up on PATH). */
  readonly firecrackerBinary: string;
  readonly startTimeoutMs: number;
  /** VMs booting at the same time; more wait in `starting` (TCG boots are CPU-bound). */
  readonly maxConcurrentBoots: number;
  /** VMs restored from a snapshot at the same time, apart from boots (a restore costs a few TCG ms of CPU, mostly waits). */
  readonly maxConcurrentRestores: number;
  /** Health checks (issue 14) running at the same time across all machines; the rest wait their turn. */
  readonly healthMaxConcurrentChecks: number;
  readonly stopTimeoutMs: number;
  readonly fileTransferTimeoutMs: number;
  readonly fileMaxSize: number;
  /** Largest volume (MiB) POST /volumes creates (docs/agents.md "Volumes"). */
  readonly volumeMaxSizeMib: number;
  /** Bytes of stdout and of stderr kept per exec; the rest is dropped and the response says so. */
  readonly execOutputMax: number;
  /** Request body limits (src/api/limits.ts). */
  readonly http: {
    readonly bodyTimeoutMs: number;
    readonly execMaxBody: number;
    readonly bodyBudget: number;
  };
  readonly auth: {
    readonly enabled: boolean;
    /** Plain keys from HYPERFLEET_API_KEY; empty means "use the stored (or a generated) key". */
    readonly apiKeys: readonly string[];
  };
  readonly stopVmsOnExit: boolean;
  /** Admission control: what machines holding a VMM may be promised in total. */
  readonly capacity: Capacity;
  readonly oci: {
    readonly cacheDir: string;
    readonly maxCacheSize: number;
    /** `host:port` of registries reached over plain HTTP. */
    readonly insecureRegistries: readonly string[];
    /** Registry host -> mirrors tried first, in order. */
    readonly mirrors: Readonly<Record<string, readonly string[]>>;
    /** The static guest agent baked into image disks as /sbin/hf-agent. */
    readonly agentBinary: string;
  };
  /** VM networking (docs/adr/0008). */
  readonly network: NetworkConfig;
  /** Warm image templates (docs/adr/0009): a snapshot per image and shape, restored instead of booting. */
  readonly templates: {
    readonly enabled: boolean;
    /** Bytes the templates may take on disk; least recently used ones no machine uses go first. */
    readonly maxSize: number;
  };
  /** Firecracker's jailer (src/config/jailer.ts). */
  readonly jailer: JailerConfig;
  /** The per-VM URL proxy (src/config/proxy.ts); null: off (HYPERFLEET_PROXY_ADDR unset). */
  readonly proxy: ProxyConfig | null;
  /** HYPERFLEET_SECRET_KEY as 64 hex digits (src/config/secrets.ts); null: `<dataDir>/secret.key`. */
  readonly secretKey: string | null;
}

/** True for addresses only this host can reach: 127.0.0.0/8, ::1, localhost. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  if (h === "localhost" || h === "::1") return true;
  return isIP(h) === 4 && h.startsWith("127.");
}

/** Variables that hold credentials: read once into the Config, then dropped from the environment. */
export const CREDENTIAL_VARIABLES = ["HYPERFLEET_SECRET_KEY", "HYPERFLEET_API_KEY"] as const;

/**
 * Removes the credential variables from `env` once the configuration holds them. Many of the
 * daemon's children (cp, qemu-img, openssl, migration helpers) inherit its environment; without
 * this each would carry the key that opens every machine's secrets for as long as it runs.
 */
export function forgetCredentials(env: Record<string, string | undefined> = process.env): void {
  for (const k of CREDENTIAL_VARIABLES) delete env[k];
}

/**
 * Builds the configuration from `env` (the daemon passes `process.env`). All problems are reported
 * together in one CONFIG_INVALID error whose message names each variable.
 *
 * @example
 * const cfg = loadConfig({ PORT: "8080", HYPERFLEET_DATA_DIR: "/tmp/hf" }).unwrap();
 */
export function loadConfig(env: Env = process.env, facts: HostFacts = hostFacts()): Result<Config> {
  const r = new EnvReader(env);
  const cap = defaultCapacity(facts);
  const dataDir = r.path("HYPERFLEET_DATA_DIR", "/var/lib/hyperfleet");
  const host = r.string("HOST", "127.0.0.1");
  const authEnabled = r.bool("HYPERFLEET_AUTH", true);
  const apiKeys = r.list("HYPERFLEET_API_KEY");

  if (isIP(host.replace(/^\[|\]$/g, "")) === 0 && !/^[A-Za-z0-9.-]+$/.test(host)) {
    r.problem("HOST", `must be an IP address or host name, got '${host}'`);
  }
  if (!authEnabled && !isLoopbackHost(host)) {
    r.problem(
      "HYPERFLEET_AUTH",
      `is off, which is only allowed on a loopback address, but HOST is '${host}': turn auth on or set HOST=127.0.0.1`,
    );
  }
  for (const key of apiKeys) {
    if (key.length < MIN_API_KEY_LENGTH || /\s/.test(key)) {
      r.problem("HYPERFLEET_API_KEY", `each key needs at least ${MIN_API_KEY_LENGTH} characters and no spaces`);
      break;
    }
  }

  const port = r.int("PORT", 3000, 0, 65535);
  const config: Config = {
    port,
    host,
    logLevel: r.oneOf("LOG_LEVEL", "info", LOG_LEVELS),
    dataDir,
    assetsDir: r.path("HYPERFLEET_ASSETS_DIR", dataDir),
    socketDir: r.path("HYPERFLEET_SOCKET_DIR", null),
    guest: {
      kernelImagePath: r.path("HYPERFLEET_KERNEL_IMAGE_PATH", null),
      initrdPath: r.path("HYPERFLEET_INITRD_PATH", null),
      kernelArgs: r.raw("HYPERFLEET_KERNEL_ARGS") ?? null,
      rootfsPath: r.path("HYPERFLEET_ROOTFS_PATH", null),
    },
    accel: r.oneOf("HYPERFLEET_ACCEL", "auto", ACCELS),
    vmm: r.oneOf("HYPERFLEET_VMM", "auto", VMMS),
    firecrackerBinary: r.string("HYPERFLEET_FIRECRACKER_BIN", "firecracker"),
    startTimeoutMs: r.int("HYPERFLEET_START_TIMEOUT", 60_000, 1_000, 600_000, "ms"),
    maxConcurrentBoots: r.int("HYPERFLEET_MAX_CONCURRENT_BOOTS", availableParallelism(), 1, 1024),
    maxConcurrentRestores: r.int("HYPERFLEET_MAX_CONCURRENT_RESTORES", RESTORES_PER_CPU * availableParallelism(), 1, 1024),
    healthMaxConcurrentChecks: r.int("HYPERFLEET_HEALTH_MAX_CONCURRENT_CHECKS", 8, 1, 1024),
    stopTimeoutMs: r.int("HYPERFLEET_STOP_TIMEOUT", 10_000, 100, 600_000, "ms"),
    fileTransferTimeoutMs: r.int("HYPERFLEET_FILE_TRANSFER_TIMEOUT", 60_000, 100, 3_600_000, "ms"),
    fileMaxSize: r.int("HYPERFLEET_FILE_MAX_SIZE", 104_857_600, 1, 1_073_741_824, "bytes"),
    volumeMaxSizeMib: r.int("HYPERFLEET_VOLUME_MAX_SIZE_MIB", 65_536, 16, 16_777_216, "MiB"),
    // At most 32 MiB: JSON may escape one byte into six characters, and both streams go into one
    // response string, which V8 caps at 512 MiB.
    execOutputMax: r.int("HYPERFLEET_EXEC_OUTPUT_MAX", 10_485_760, 0, 33_554_432, "bytes"),
    http: {
      bodyTimeoutMs: r.int("HYPERFLEET_BODY_TIMEOUT", 30_000, 100, 3_600_000, "ms"),
      execMaxBody: r.int("HYPERFLEET_EXEC_MAX_BODY", 1_048_576, 1024, 1_073_741_824, "bytes"),
      bodyBudget: r.int("HYPERFLEET_BODY_BUDGET", 134_217_728, 1_048_576, Number.MAX_SAFE_INTEGER, "bytes"),
    },
    auth: { enabled: authEnabled, apiKeys },
    stopVmsOnExit: r.bool("HYPERFLEET_STOP_VMS_ON_EXIT", false),
    capacity: {
      maxMemoryMib: r.int("HYPERFLEET_MAX_MEMORY_MIB", cap.maxMemoryMib, 1, 2 ** 31, "MiB"),
      maxVcpus: r.int("HYPERFLEET_MAX_VCPUS", cap.maxVcpus, 1, 1_000_000),
      maxVcpusPerMachine: r.int("HYPERFLEET_MAX_VCPUS_PER_MACHINE", cap.maxVcpusPerMachine, 1, 1024),
      vmOverheadMib: r.int("HYPERFLEET_VM_OVERHEAD_MIB", cap.vmOverheadMib, 0, 65_536, "MiB"),
    },
    oci: {
      cacheDir: r.path("HYPERFLEET_OCI_CACHE_DIR", join(dataDir, "images")),
      maxCacheSize: r.int("HYPERFLEET_OCI_MAX_CACHE_SIZE", 10_737_418_240, 0, Number.MAX_SAFE_INTEGER, "bytes"),
      insecureRegistries: readRegistryHosts(r, "HYPERFLEET_INSECURE_REGISTRIES"),
      mirrors: readMirrors(r, "HYPERFLEET_REGISTRY_MIRRORS"),
      agentBinary: r.path("HYPERFLEET_AGENT_BINARY", defaultAgentBinary()),
    },
    network: readNetwork(r, port),
    templates: {
      enabled: r.bool("HYPERFLEET_WARM_TEMPLATES", true),
      maxSize: r.int("HYPERFLEET_TEMPLATE_CACHE_MAX", 4_294_967_296, 0, Number.MAX_SAFE_INTEGER, "bytes"),
    },
    jailer: readJailer(r),
    proxy: readProxy(r, dataDir),
    secretKey: readSecretKey(r),
  };

  if (config.oci.cacheDir.includes(":")) {
    r.problem("HYPERFLEET_OCI_CACHE_DIR", "must not contain ':' (skopeo reads it as oci:<dir>:<tag>)");
  }
  if (r.problems.length > 0) return err(configError(r.problems));
  return ok(deepFreeze(config));
}

function configError(problems: ConfigProblem[]): HyperfleetError {
  const lines = problems.map((p) => `  ${p.variable} ${p.message}`);
  return new HyperfleetError("CONFIG_INVALID", `invalid configuration:\n${lines.join("\n")}`, {
    details: { field: problems[0]?.variable, problems },
  });
}

function deepFreeze<T>(o: T): T {
  if (o !== null && typeof o === "object" && !Object.isFrozen(o)) {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
