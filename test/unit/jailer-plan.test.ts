/**
 * The jail planner (src/vmm/firecracker/jailer-layout.ts), pure: the jailer's argv against the
 * flags Firecracker v1.16.1 documents (docs/jailer.md, "Jailer Usage"; src/jailer/src/main.rs
 * build_arg_parser), the chroot layout `<chroot_base>/<exec_file_name>/<id>/root`, the VmSpec
 * rewritten to jail paths, and the limits from the VM's shape.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { isHyperfleetError } from "../../src/core/errors.js";
import type { VmSpec } from "../../src/core/ports/vmm-driver.js";
import { buildConfigureRequests, buildRestoreRequests } from "../../src/vmm/firecracker/config.js";
import { FirecrackerContract } from "../../src/vmm/firecracker/spec.js";
import { cgroupLimits, findCgroup2Mount, jailIdFor, planJail, type JailerOptions } from "../../src/vmm/firecracker/jailer-layout.js";

/** v1.16.1's jailer flags: name -> takes a value; `cgroup` and `resource-limit` may repeat. */
const JAILER_FLAGS: Record<string, boolean> = {
  id: true, "exec-file": true, uid: true, gid: true, "cgroup-version": true, cgroup: true, "parent-cgroup": true,
  "chroot-base-dir": true, netns: true, "resource-limit": true, daemonize: false, "new-pid-ns": false, version: false, help: false,
};
const REPEATABLE = new Set(["cgroup", "resource-limit"]);
const REQUIRED = ["id", "exec-file", "uid", "gid"];

/** Parses a jailer argv the way its arg parser does; throws on what it would refuse. */
function parseJailerArgv(argv: string[]): { flags: Map<string, string[]>; extra: string[] } {
  const flags = new Map<string, string[]>();
  let i = 1;
  for (; i < argv.length && argv[i] !== "--"; i++) {
    const a = argv[i]!;
    assert.ok(a.startsWith("--"), `unexpected positional ${a}`);
    const name = a.slice(2);
    assert.ok(name in JAILER_FLAGS, `unknown jailer flag --${name}`);
    assert.ok(!flags.has(name) || REPEATABLE.has(name), `--${name} given twice`);
    const value = JAILER_FLAGS[name] ? argv[++i] : "";
    assert.ok(value !== undefined && !value.startsWith("--"), `--${name} needs a value`);
    flags.set(name, [...(flags.get(name) ?? []), value]);
  }
  for (const r of REQUIRED) assert.ok(flags.has(r), `--${r} is required`);
  return { flags, extra: argv.slice(i + 1) };
}

const spec: VmSpec = {
  id: "vm_01J8ZK3M6NQ4W5X7Y9ABCDEFGH",
  vcpus: 2,
  memMib: 256,
  kernelPath: "/var/lib/hyperfleet/kernel/6.1/vmlinux",
  initrdPath: "/var/lib/hyperfleet/initramfs/x.cpio",
  kernelArgs: "console=ttyS0 quiet",
  rootDisk: { path: "/var/lib/hyperfleet/machines/vm_01J8ZK3M6NQ4W5X7Y9ABCDEFGH/rootfs.ext4", format: "raw" },
  extraDisks: [{ path: "/data/ro.img", readOnly: true, format: "raw" }],
  nics: [{ tap: "tap0", mac: "02:00:00:00:00:01" }],
  netns: "/run/netns/hf-ab-vm_01J8",
  runDir: "/var/lib/hyperfleet/machines/vm_01J8ZK3M6NQ4W5X7Y9ABCDEFGH",
};

const opts: JailerOptions = {
  jailerBinary: "/usr/local/bin/jailer",
  firecrackerBinary: "/usr/local/bin/firecracker",
  chrootBase: "/srv/jailer",
  cgroupParent: "hyperfleet",
  cgroupRoot: "/sys/fs/cgroup",
  uidBase: 900_000,
  uidCount: 100,
  memOverheadMib: 64,
  newPidNs: false,
  uid: 900_007,
  gid: 900_007,
};

test("jailIdFor: a valid id is kept; others get hyphens and a hash, within the jailer's 64 characters", () => {
  assert.equal(jailIdFor("abc-123"), "abc-123");
  const j = jailIdFor(spec.id);
  assert.match(j, /^vm-01J8ZK3M6NQ4W5X7Y9ABCDEFGH-[0-9a-f]{8}$/);
  assert.notEqual(jailIdFor("vm_1"), jailIdFor("vm-1"));
  assert.equal(jailIdFor("vm_1"), jailIdFor("vm_1"));
  const long = jailIdFor("x".repeat(100));
  assert.ok(long.length <= 64 && /^[A-Za-z0-9-]+$/.test(long), long);
  assert.ok(jailIdFor("é/..".repeat(3)).match(/^[A-Za-z0-9-]{1,64}$/));
});

test("planJail: the argv has only v1.16.1's documented flags, every value where the jailer reads it", () => {
  const plan = planJail(spec, opts);
  const { flags, extra } = parseJailerArgv(plan.argv);
  assert.equal(plan.argv[0], "/usr/local/bin/jailer");
  assert.deepEqual(flags.get("id"), [plan.jailId]);
  assert.deepEqual(flags.get("exec-file"), ["/usr/local/bin/firecracker"]);
  assert.deepEqual(flags.get("uid"), ["900007"]);
  assert.deepEqual(flags.get("gid"), ["900007"]);
  assert.deepEqual(flags.get("chroot-base-dir"), ["/srv/jailer"]);
  assert.deepEqual(flags.get("cgroup-version"), ["2"]);
  assert.deepEqual(flags.get("parent-cgroup"), ["hyperfleet"]);
  assert.deepEqual(flags.get("cgroup"), ["cpu.max=300000 100000", `memory.max=${320 * 1024 * 1024}`]);
  // The jailer splits each --cgroup on '=' and wants exactly two parts, the file named <controller>.<property>.
  for (const c of flags.get("cgroup")!) assert.match(c, /^[a-z]+\.[a-z]+=[^=]+$/);
  assert.deepEqual(flags.get("netns"), ["/run/netns/hf-ab-vm_01J8"]);
  assert.equal(flags.has("new-pid-ns"), false);
  assert.equal(flags.has("daemonize"), false);
  assert.deepEqual(extra, ["--api-sock", "/firecracker.sock"]);
  // The whole line, so a change is seen in review.
  assert.deepEqual(plan.argv, [
    "/usr/local/bin/jailer", "--id", plan.jailId, "--exec-file", "/usr/local/bin/firecracker", "--uid", "900007", "--gid", "900007",
    "--chroot-base-dir", "/srv/jailer", "--cgroup-version", "2", "--parent-cgroup", "hyperfleet",
    "--cgroup", "cpu.max=300000 100000", "--cgroup", "memory.max=335544320", "--netns", "/run/netns/hf-ab-vm_01J8",
    "--", "--api-sock", "/firecracker.sock",
  ]);
});

test("planJail: --new-pid-ns and extra Firecracker arguments when asked; no --netns without a namespace", () => {
  const { netns: _, ...noNs } = spec;
  const plan = planJail(noNs, { ...opts, newPidNs: true, firecrackerArgs: ["--level", "Warning"] });
  const { flags, extra } = parseJailerArgv(plan.argv);
  assert.equal(flags.has("netns"), false);
  assert.deepEqual(flags.get("new-pid-ns"), [""]);
  assert.deepEqual(extra, ["--api-sock", "/firecracker.sock", "--level", "Warning"]);
});

test("planJail: the layout is <chroot_base>/<exec_file_name>/<id>/root; host paths of the sockets, console and pid file", () => {
  const plan = planJail(spec, { ...opts, firecrackerBinary: "/opt/fc/firecracker-v1.16.1-x86_64" });
  assert.equal(plan.jailDir, `/srv/jailer/firecracker-v1.16.1-x86_64/${plan.jailId}`);
  assert.equal(plan.root, `${plan.jailDir}/root`);
  assert.equal(plan.pidFile, `${plan.root}/firecracker-v1.16.1-x86_64.pid`);
  assert.deepEqual(plan.host, {
    apiSocket: `${plan.root}/firecracker.sock`,
    log: `${plan.root}/firecracker.log`,
    metrics: `${plan.root}/firecracker.metrics`,
    console: `${plan.root}/console.log`,
    vsockUds: `${plan.root}/vsock.sock`,
  });
  assert.deepEqual(plan.inside, { apiSocket: "/firecracker.sock", log: "/firecracker.log", metrics: "/firecracker.metrics", console: "/console.log", vsockUds: "/vsock.sock" });
  assert.deepEqual(plan.outputs, ["/firecracker.log", "/firecracker.metrics", "/console.log"]);
  assert.deepEqual(plan.snapshotOut, { jail: "/snapshot-out", host: `${plan.root}/snapshot-out` });
  assert.deepEqual(plan.cgroup, { dir: `/sys/fs/cgroup/hyperfleet/${plan.jailId}`, cpuMax: "300000 100000", memoryMax: "335544320" });
  assert.deepEqual(plan.symlinks, []);
});

test("planJail: kernel, initrd and disks are linked in, the spec names them inside the jail", () => {
  const plan = planJail(spec, opts);
  assert.deepEqual(plan.links, [
    { host: spec.kernelPath, jail: "/vmlinux", writable: false },
    { host: spec.initrdPath, jail: "/initrd", writable: false },
    { host: spec.rootDisk.path, jail: "/rootfs", writable: true },
    { host: "/data/ro.img", jail: "/disk1", writable: false },
  ]);
  assert.deepEqual(plan.spec, {
    id: spec.id, vcpus: 2, memMib: 256, kernelPath: "/vmlinux", initrdPath: "/initrd", kernelArgs: spec.kernelArgs,
    rootDisk: { path: "/rootfs", format: "raw" }, extraDisks: [{ path: "/disk1", readOnly: true, format: "raw" }],
    nics: spec.nics, runDir: "/",
  });
  // The configure sequence built from the jailed spec names only paths inside the jail, and is
  // still what Firecracker's API definition accepts.
  const requests = buildConfigureRequests(plan.spec, plan.inside, { guestCid: 3 });
  const bodies = JSON.stringify(requests.map((r) => r.body));
  assert.ok(!bodies.includes("/var/lib") && !bodies.includes("/srv/jailer"), bodies);
  const contract = new FirecrackerContract(new URL("../../specs/firecracker/firecracker.yaml", import.meta.url));
  for (const r of requests) assert.equal(contract.validateRequest(r.method, r.path, r.body), null, `${r.method} ${r.path}`);
});

test("planJail: a restore links the snapshot's state and memory in; the restore requests name them inside", () => {
  const snap = { dir: "/var/lib/hyperfleet/snapshots/s1", purpose: "clone" as const, stateFile: "/var/lib/hyperfleet/snapshots/s1/state", memoryFile: "/var/lib/hyperfleet/snapshots/s1/memory", disk: null, sizeBytes: 1 };
  const plan = planJail(spec, opts, snap);
  assert.deepEqual(plan.links.slice(-2), [
    { host: snap.stateFile, jail: "/snapshot/state", writable: false },
    { host: snap.memoryFile, jail: "/snapshot/memory", writable: false },
  ]);
  assert.deepEqual(plan.snapshot, { ...snap, dir: "/snapshot", stateFile: "/snapshot/state", memoryFile: "/snapshot/memory" });
  const load = buildRestoreRequests(plan.spec, plan.inside, { statePath: plan.snapshot!.stateFile, memPath: plan.snapshot!.memoryFile!, resume: true }).at(-1)!;
  assert.deepEqual((load.body as { mem_backend: unknown }).mem_backend, { backend_type: "File", backend_path: "/snapshot/memory" });
});

test("planJail: sockets a caller named become symlinks to the jail's", () => {
  const plan = planJail({ ...spec, controlSocket: "/tmp/fc.sock", agentSocket: "/tmp/v.sock" }, opts);
  assert.deepEqual(plan.symlinks, [{ path: "/tmp/fc.sock", target: plan.host.apiSocket }, { path: "/tmp/v.sock", target: plan.host.vsockUds }]);
  assert.equal(plan.spec.controlSocket, undefined);
  assert.equal(plan.spec.agentSocket, undefined);
});

test("cgroupLimits: one CPU per vCPU plus one for the VMM thread; guest memory plus the overhead", () => {
  assert.deepEqual(cgroupLimits(1, 128, 0), { cpuMax: "200000 100000", memoryMax: String(128 * 1024 * 1024) });
  assert.deepEqual(cgroupLimits(4, 1024, 32), { cpuMax: "500000 100000", memoryMax: String(1056 * 1024 * 1024) });
});

test("planJail refuses what the jailer would: an exec file not named firecracker, a bad parent cgroup, a uid out of range, long sockets", () => {
  const code = (c: string) => (e: unknown) => isHyperfleetError(e) && e.code === c;
  assert.throws(() => planJail(spec, { ...opts, firecrackerBinary: "/usr/bin/qemu" }), code("CONFIG_INVALID"));
  for (const p of ["/abs", "a/../b", ".", "a//b", ""]) assert.throws(() => planJail(spec, { ...opts, cgroupParent: p }), code("CONFIG_INVALID"), p);
  assert.throws(() => planJail(spec, { ...opts, uid: 900_100 }), code("CONFIG_INVALID"));
  assert.throws(() => planJail(spec, { ...opts, gid: 1 }), code("CONFIG_INVALID"));
  assert.throws(() => planJail(spec, { ...opts, chrootBase: `/${"d".repeat(60)}` }), code("VMM_SPAWN_FAILED"));
});

test("findCgroup2Mount: the cgroup2 line of /proc/mounts, unified or hybrid", () => {
  assert.equal(findCgroup2Mount("cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate 0 0\n"), "/sys/fs/cgroup");
  const hybrid = "tmpfs /sys/fs/cgroup tmpfs rw 0 0\ncgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0\n";
  assert.equal(findCgroup2Mount(hybrid), "/sys/fs/cgroup/unified");
  assert.equal(findCgroup2Mount("cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n"), null);
});
