/**
 * jailer v1.16.1's command line (its docs/jailer.md and src/jailer/src/main.rs arg list), pure.
 * Flags taking a value and switches are the jailer's own lists; unknown, repeated (where it allows
 * one) or missing required arguments are refused like the real parser refuses them.
 */

const WITH_VALUE = new Set(["id", "exec-file", "uid", "gid", "chroot-base-dir", "netns", "cgroup", "cgroup-version", "parent-cgroup", "resource-limit"]);
const SWITCHES = new Set(["daemonize", "new-pid-ns", "version", "help"]);
/** The jailer lets these repeat. */
const MULTIPLE = new Set(["cgroup", "resource-limit"]);
const REQUIRED = ["id", "exec-file", "uid", "gid"];

export interface JailerArgs {
  id: string;
  execFile: string;
  uid: number;
  gid: number;
  chrootBaseDir: string;
  netns?: string;
  cgroups: { file: string; value: string }[];
  cgroupVersion: 1 | 2;
  parentCgroup?: string;
  resourceLimits: string[];
  daemonize: boolean;
  newPidNs: boolean;
  /** What follows `--`: Firecracker's own arguments. */
  firecrackerArgs: string[];
}

export class JailerArgError extends Error {}

export function parseJailerArgs(argv: string[]): JailerArgs {
  const values = new Map<string, string[]>();
  const switches = new Set<string>();
  let rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const raw = argv[i]!;
    if (raw === "--") {
      rest = argv.slice(i + 1);
      break;
    }
    const name = raw.startsWith("--") ? raw.slice(2) : "";
    if (WITH_VALUE.has(name)) {
      if (values.has(name) && !MULTIPLE.has(name)) throw new JailerArgError(`The argument '${name}' was provided more than once.`);
      const v = argv[i + 1];
      if (v === undefined || v.startsWith("--")) throw new JailerArgError(`Argument '${name}' did not receive a value.`);
      values.set(name, [...(values.get(name) ?? []), v]);
      i++;
    } else if (SWITCHES.has(name)) {
      if (switches.has(name)) throw new JailerArgError(`The argument '${name}' was provided more than once.`);
      switches.add(name);
    } else {
      throw new JailerArgError(`Found argument '${name || raw}' which wasn't expected, or isn't valid in this context.`);
    }
  }
  for (const r of REQUIRED) if (!values.has(r)) throw new JailerArgError(`Required argument '${r}' was not provided.`);
  const one = (n: string) => values.get(n)?.[0];
  const id = one("id")!;
  // utils::validators::validate_instance_id
  if (!/^[A-Za-z0-9-]{1,64}$/.test(id)) throw new JailerArgError(`Invalid instance ID: ${id}`);
  const num = (n: string) => {
    const s = one(n)!;
    if (!/^\d+$/.test(s) || Number(s) > 2 ** 32 - 1) throw new JailerArgError(`Invalid ${n} value: ${s}`);
    return Number(s);
  };
  const version = one("cgroup-version") ?? "1";
  if (version !== "1" && version !== "2") throw new JailerArgError(`Invalid cgroup version: ${version}`);
  const cgroups = (values.get("cgroup") ?? []).map((c) => {
    const m = /^([a-z_]+\.[a-z_.]+)=(.+)$/.exec(c);
    if (!m) throw new JailerArgError(`Invalid cgroup: ${c}`);
    return { file: m[1]!, value: m[2]! };
  });
  return {
    id,
    execFile: one("exec-file")!,
    uid: num("uid"),
    gid: num("gid"),
    chrootBaseDir: one("chroot-base-dir") ?? "/srv/jailer",
    ...(values.has("netns") ? { netns: one("netns")! } : {}),
    cgroups,
    cgroupVersion: version === "2" ? 2 : 1,
    ...(values.has("parent-cgroup") ? { parentCgroup: one("parent-cgroup")! } : {}),
    resourceLimits: values.get("resource-limit") ?? [],
    daemonize: switches.has("daemonize"),
    newPidNs: switches.has("new-pid-ns"),
    firecrackerArgs: rest,
  };
}
