/**
 * Firecracker's jailer (docs/firecracker.md, "Jailer"): whether VMs run jailed, where the jails
 * and their cgroups go, and the uids they run as. The Firecracker binary itself is the driver's
 * setting; the jailer execs that one.
 */
import type { EnvReader } from "./env-reader.js";

export interface JailerConfig {
  /** `HYPERFLEET_JAILER`: Firecracker VMs start through the jailer (chroot, own uid, cgroup, netns). */
  readonly enabled: boolean;
  readonly binary: string;
  readonly chrootBase: string;
  /** Relative cgroup v2 path; each VM's cgroup is `<parent>/<jail id>`. */
  readonly cgroupParent: string;
  /** VMs run as uid = gid = base + n, for n below `uidCount`. */
  readonly uidBase: number;
  readonly uidCount: number;
  readonly newPidNs: boolean;
}

export function readJailer(r: EnvReader): JailerConfig {
  const cgroupParent = r.string("HYPERFLEET_JAILER_CGROUP_PARENT", "hyperfleet");
  if (cgroupParent.startsWith("/") || cgroupParent.split("/").some((p) => p === "" || p === "." || p === "..")) {
    r.problem("HYPERFLEET_JAILER_CGROUP_PARENT", `must be a relative cgroup path without '.' or '..' (e.g. hyperfleet or machines/hyperfleet), got '${cgroupParent}'`);
  }
  const uidBase = r.int("HYPERFLEET_JAILER_UID_BASE", 900_000, 1, 2 ** 31 - 1);
  const uidCount = r.int("HYPERFLEET_JAILER_UID_COUNT", 10_000, 1, 1_000_000);
  if (uidBase + uidCount > 2 ** 32 - 2) r.problem("HYPERFLEET_JAILER_UID_COUNT", "the range must end below 4294967294 (uid -1 and -2 are special)");
  return {
    enabled: r.bool("HYPERFLEET_JAILER", false),
    binary: r.path("HYPERFLEET_JAILER_BINARY", "/usr/local/bin/jailer"),
    chrootBase: r.path("HYPERFLEET_JAILER_CHROOT_BASE", "/srv/jailer"),
    cgroupParent,
    uidBase,
    uidCount,
    newPidNs: r.bool("HYPERFLEET_JAILER_NEW_PID_NS", false),
  };
}
