/**
 * The jailer stand-in's work before the exec (README.md): what jailer v1.16.1 does that can be done
 * here, then the command the `jailer` script execs, printed as shell words. Runs as a child of that
 * script, whose pid becomes Firecracker's: that pid goes into the pid file and the cgroup.
 */
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, readFileSync, realpathSync, statSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { JailerArgError, parseJailerArgs, type JailerArgs } from "./args.js";

const say = (m: string) => process.stderr.write(`jailer stand-in: ${m}\n`);
const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

function fail(m: string): never {
  process.stderr.write(`Jailer error: ${m}\n`);
  process.exit(1);
}

/** cgroup v2 as the jailer does it, when the controllers are on the v2 hierarchy; else said and skipped (a stand-in deviation). */
function cgroups(a: JailerArgs, pid: number): void {
  if (a.cgroups.length === 0) return;
  if (a.cgroupVersion !== 2) fail("the stand-in emulates cgroup v2 only");
  const line = readFileSync("/proc/mounts", "utf8").split("\n").find((l) => l.split(" ")[2] === "cgroup2");
  if (!line) fail("no cgroup2 mount");
  const root = line.split(" ")[1]!;
  const have = new Set(readFileSync(join(root, "cgroup.controllers"), "utf8").trim().split(/\s+/).filter(Boolean));
  const want = [...new Set(a.cgroups.map((c) => c.file.split(".")[0]!))];
  const missing = want.filter((c) => !have.has(c));
  if (missing.length > 0) {
    // The real jailer refuses here ("Controller cpu is unavailable"); the stand-in goes on so the
    // rest can be tested on a host whose cpu and memory controllers are bound to cgroup v1.
    say(`cgroup v2 at ${root} lacks ${missing.join(", ")} (has: ${[...have].join(" ") || "none"}): no cgroup created, ${a.cgroups.map((c) => c.file).join(", ")} not applied`);
    return;
  }
  const parts = [...(a.parentCgroup ? a.parentCgroup.split("/") : []), a.id];
  let dir = root;
  for (const p of parts) {
    writeFileSync(join(dir, "cgroup.subtree_control"), want.map((c) => `+${c}`).join(" "));
    dir = join(dir, p);
    mkdirSync(dir, { recursive: true });
  }
  for (const c of a.cgroups) writeFileSync(join(dir, c.file), c.value);
  writeFileSync(join(dir, "cgroup.procs"), String(pid));
}

function main(): void {
  let a: JailerArgs;
  try {
    a = parseJailerArgs(process.argv.slice(2));
  } catch (e) {
    if (!(e instanceof JailerArgError)) throw e;
    process.stderr.write(`Arguments parsing error: ${e.message}\n\nFor more information try --help.\n`);
    process.exit(1);
  }
  if (a.daemonize || a.newPidNs || a.resourceLimits.length > 0) fail("--daemonize, --new-pid-ns and --resource-limit are not emulated by the stand-in");
  let exec: string;
  try {
    exec = realpathSync(a.execFile);
  } catch {
    fail(`Failed to canonicalize path ${a.execFile}`);
  }
  const name = basename(exec);
  if (!statSync(exec).isFile()) fail(`${exec} is not a file`);
  if (!name.includes("firecracker")) fail(`Invalid filename. The filename of the binary needs to contain "firecracker"`);
  const base = realpathSync(a.chrootBaseDir);
  const root = join(base, name, a.id, "root");
  mkdirSync(root, { recursive: true });
  const pid = process.ppid;
  const pidFile = join(root, `${name}.pid`);
  if (existsSync(pidFile)) fail(`Failed to write pid file: ${pidFile} exists`);
  // The jailer copies the binary in (a hard link would let the VM change the host's).
  copyFileSync(exec, join(root, name));
  chmodSync(join(root, name), 0o755);
  say("/dev/kvm, /dev/net/tun and /dev/urandom are not created (no mknod here): the Firecracker stand-in needs none");
  cgroups(a, pid);
  chownSync(root, a.uid, a.gid);
  writeFileSync(pidFile, `${pid}`);
  // Firecracker is told its id and start times by the jailer.
  const now = process.hrtime.bigint() / 1000n;
  const fcArgs = [`/${name}`, "--id", a.id, "--start-time-us", String(now), "--start-time-cpu-us", "0", "--parent-cpu-time-us", "0", ...a.firecrackerArgs];
  const words = [...(a.netns ? ["nsenter", `--net=${a.netns}`, "--"] : []), "unshare", "--mount", "--propagation", "private", "--", "/bin/sh", join(import.meta.dirname, "enter.sh"), root, String(a.uid), String(a.gid), ...fcArgs];
  process.stdout.write(words.map(quote).join(" ") + "\n");
}

main();
