/**
 * Firecracker v1.16.1's command line, as far as the stand-in needs it (pure). Flags that take a
 * value and flags that do not are Firecracker's own list, so a driver that passes a flag real
 * Firecracker would reject is refused here too, with Firecracker's wording and exit code.
 */

/** Firecracker's FcExitCode::ArgParsing. */
export const EXIT_ARG_PARSING = 153;
export const FC_VERSION = "1.16.1";
/** Firecracker's default when --api-sock is not given. */
export const DEFAULT_API_SOCK = "/run/firecracker.socket";
export const DEFAULT_ID = "anonymous-instance";

const WITH_VALUE = new Set([
  "api-sock",
  "id",
  "seccomp-filter",
  "start-time-us",
  "start-time-cpu-us",
  "parent-cpu-time-us",
  "config-file",
  "mmds-size-limit",
  "http-api-max-payload-size",
  "log-path",
  "level",
  "module",
  "metrics-path",
  "metadata",
  "describe-snapshot",
]);
const SWITCHES = new Set(["no-seccomp", "no-api", "boot-timer", "show-level", "show-log-origin", "enable-pci", "version", "help", "snapshot-version"]);

export interface StandinArgs {
  apiSock: string;
  id: string;
  logPath?: string;
  level?: string;
  version: boolean;
  help: boolean;
  /** Accepted by Firecracker but not playable by a process stand-in (--no-api, --config-file ...). */
  unsupported: string[];
}

export class ArgError extends Error {}

export function parseArgs(argv: string[]): StandinArgs {
  const values = new Map<string, string>();
  const switches = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const raw = argv[i]!;
    const name = raw.startsWith("--") ? raw.slice(2) : "";
    if (WITH_VALUE.has(name)) {
      if (values.has(name)) throw new ArgError(`The argument '${name}' was provided more than once.`);
      const v = argv[i + 1];
      if (v === undefined || v.startsWith("--")) throw new ArgError(`Argument '${name}' did not receive a value.`);
      values.set(name, v);
      i++;
    } else if (SWITCHES.has(name)) {
      if (switches.has(name)) throw new ArgError(`The argument '${name}' was provided more than once.`);
      switches.add(name);
    } else {
      throw new ArgError(`Found argument '${name || raw}' which wasn't expected, or isn't valid in this context.`);
    }
  }
  const id = values.get("id") ?? DEFAULT_ID;
  // Firecracker's validate_instance_id: 1..64 of alphanumerics and '-'.
  if (!/^[A-Za-z0-9-]{1,64}$/.test(id)) throw new ArgError(`Invalid instance ID: ${id}`);
  const unsupported = ["no-api", "config-file", "metadata", "describe-snapshot", "snapshot-version"].filter((f) => values.has(f) || switches.has(f));
  return {
    apiSock: values.get("api-sock") ?? DEFAULT_API_SOCK,
    id,
    ...(values.has("log-path") ? { logPath: values.get("log-path")! } : {}),
    ...(values.has("level") ? { level: values.get("level")! } : {}),
    version: switches.has("version"),
    help: switches.has("help"),
    unsupported,
  };
}

/** What Firecracker prints for a parse error (its logger line, then the hint). */
export function argErrorText(e: ArgError): string {
  return `Arguments parsing error: ${e.message} \n\nFor more information try --help.\n`;
}
