/**
 * The jail applier (src/vmm/firecracker/jailer.ts) on the real file system, as root, in a temporary
 * chroot base: uid claims, hard links (and copies across file systems, with their cost), ownership
 * and modes, and a cleanup that leaves nothing. The cgroup part runs for real under a parent this
 * test creates in the host's cgroup v2 hierarchy. The jailer binary itself cannot run here (no
 * Firecracker release on this machine): what it does after our preparation is its own.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, lstatSync, mkdirSync, symlinkSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { isHyperfleetError } from "../../src/core/errors.js";
import type { VmSpec } from "../../src/core/ports/vmm-driver.js";
import { cgroup2Root, claimJailIds, claimsDir, openJail, prepareJail, removeJail, resolveJailerSettings } from "../../src/vmm/firecracker/jailer.js";
import { planJail, type JailerSettings } from "../../src/vmm/firecracker/jailer-layout.js";

const isRoot = process.getuid?.() === 0;
const skip = isRoot ? false : "needs root (chown to the VM's uid, hard links of root's files)";

const dir = mkdtempSync(join(tmpdir(), "hf-jail-"));
const shm = existsSync("/dev/shm") ? mkdtempSync("/dev/shm/hf-jail-") : null;
const cgroupRoot = await cgroup2Root().catch(() => "");
const cgroupParent = `hft-${randomBytes(4).toString("hex")}-jail`;

after(() => {
  rmSync(dir, { recursive: true, force: true });
  if (shm) rmSync(shm, { recursive: true, force: true });
  if (cgroupRoot && existsSync(join(cgroupRoot, cgroupParent))) rmdirSync(join(cgroupRoot, cgroupParent));
});

function settings(base: string, uidCount = 3): JailerSettings {
  return {
    jailerBinary: "/usr/local/bin/jailer",
    firecrackerBinary: "/usr/local/bin/firecracker",
    chrootBase: base,
    cgroupParent,
    cgroupRoot: cgroupRoot || join(dir, "no-cgroup"),
    uidBase: 950_000,
    uidCount,
    memOverheadMib: 32,
    newPidNs: false,
  };
}

/** A VM's files as the daemon has them: shared assets (0644 root), its own disk, an unreadable one. */
function vmFiles(name: string, assetsDir = join(dir, `${name}-assets`)): VmSpec {
  const runDir = join(dir, `${name}-run`);
  mkdirSync(assetsDir, { recursive: true });
  mkdirSync(runDir, { recursive: true });
  writeFileSync(join(assetsDir, "vmlinux"), "kernel bytes", { mode: 0o644 });
  writeFileSync(join(assetsDir, "initrd"), "initrd bytes", { mode: 0o644 });
  writeFileSync(join(runDir, "rootfs.ext4"), "the machine's disk", { mode: 0o644 });
  writeFileSync(join(dir, `${name}-secret.img`), "root-only read-only disk", { mode: 0o600 });
  return {
    id: `vm_${name}`,
    vcpus: 1,
    memMib: 128,
    kernelPath: join(assetsDir, "vmlinux"),
    initrdPath: join(assetsDir, "initrd"),
    kernelArgs: "quiet",
    rootDisk: { path: join(runDir, "rootfs.ext4"), format: "raw" },
    extraDisks: [{ path: join(dir, `${name}-secret.img`), readOnly: true, format: "raw" }],
    runDir,
  };
}

async function killAndWait(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const gone = new Promise((r) => c.once("exit", r));
  c.kill("SIGKILL");
  await gone;
}

const ino = (p: string) => statSync(p).ino;
const mode = (p: string) => statSync(p).mode & 0o7777;

test("claimJailIds: one uid per jail from the range, the same one again for the same jail, none past the range", { skip }, async () => {
  const base = mkdtempSync(join(dir, "claims-"));
  const s = settings(base, 4);
  assert.deepEqual(await claimJailIds(s, "a"), { uid: 950_000, gid: 950_000 });
  assert.deepEqual(await claimJailIds(s, "b"), { uid: 950_001, gid: 950_001 });
  assert.deepEqual(await claimJailIds(s, "a"), { uid: 950_000, gid: 950_000 });
  // Two at once never share one.
  const [c, d] = await Promise.all([claimJailIds(s, "c"), claimJailIds(s, "d")]);
  assert.notEqual(c.uid, d.uid);
  await assert.rejects(claimJailIds(s, "e"), (e) => isHyperfleetError(e) && e.code === "VMM_SPAWN_FAILED" && /HYPERFLEET_JAILER_UID_COUNT/.test(e.message));
  assert.equal(readdirSync(claimsDir(s)).length, 4);
});

test("openJail links, owns and copies what the VM needs; removeJail leaves nothing but the machine's own files", { skip }, async () => {
  const base = mkdtempSync(join(dir, "base-"));
  const spec = vmFiles("one");
  const ctl = join(dir, "one-api.sock");
  const { plan, linked, copied } = await openJail({ ...spec, controlSocket: ctl }, settings(base));
  assert.equal(plan.uid, 950_000);
  assert.equal(plan.root, join(base, "firecracker", plan.jailId, "root"));
  assert.equal(mode(plan.jailDir), 0o700);
  assert.equal(statSync(plan.jailDir).uid, 0);

  // Shared assets: the same inode, still root's and world-readable (no chown of a shared file).
  assert.deepEqual(linked, ["/vmlinux", "/initrd", "/rootfs"]);
  for (const [jail, host] of [["vmlinux", spec.kernelPath], ["initrd", spec.initrdPath!]] as const) {
    assert.equal(ino(join(plan.root, jail)), ino(host));
    assert.equal(statSync(host).uid, 0);
    assert.equal(mode(host), 0o644);
  }
  // The machine's disk: the same inode (the guest's writes land on it), owned by the VM, 0600.
  const disk = join(plan.root, "rootfs");
  assert.equal(ino(disk), ino(spec.rootDisk.path));
  assert.equal(statSync(disk).uid, 950_000);
  assert.equal(statSync(disk).gid, 950_000);
  assert.equal(mode(disk), 0o600);
  // A read-only disk the VM's uid could not read is copied, and the copy is the VM's (read-only).
  assert.equal(copied.length, 1);
  assert.equal(copied[0]!.jail, "/disk1");
  assert.equal(copied[0]!.why, "not readable by the VM's uid");
  assert.ok(["reflink", "sparse", "full"].includes(copied[0]!.method));
  const ro = join(plan.root, "disk1");
  assert.notEqual(ino(ro), ino(spec.extraDisks![0]!.path));
  assert.equal(readFileSync(ro, "utf8"), "root-only read-only disk");
  assert.equal(statSync(ro).uid, 950_000);
  assert.equal(mode(ro), 0o400);
  assert.equal(mode(spec.extraDisks![0]!.path), 0o600);
  // Files Firecracker writes but does not create, and where it writes snapshots.
  for (const p of ["firecracker.log", "firecracker.metrics", "console.log"]) {
    assert.equal(statSync(join(plan.root, p)).size, 0);
    assert.equal(statSync(join(plan.root, p)).uid, 950_000);
    assert.equal(mode(join(plan.root, p)), 0o600);
  }
  assert.equal(statSync(plan.snapshotOut.host).uid, 950_000);
  assert.equal(mode(plan.snapshotOut.host), 0o700);
  // The socket the caller named points into the jail.
  assert.equal(readlinkSync(ctl), plan.host.apiSocket);

  await removeJail(plan);
  assert.equal(existsSync(plan.jailDir), false);
  assert.deepEqual(readdirSync(join(base, "firecracker")), []);
  assert.deepEqual(readdirSync(claimsDir(settings(base))), []);
  assert.equal(existsSync(ctl), false);
  // What was only linked stays where it was: the machine's disk (still its bytes) and the assets.
  assert.equal(readFileSync(spec.rootDisk.path, "utf8"), "the machine's disk");
  assert.equal(statSync(spec.rootDisk.path).uid, 0, "the disk is root's again once its uid is given back");
  assert.equal(readFileSync(spec.kernelPath, "utf8"), "kernel bytes");
  assert.equal(readFileSync(spec.extraDisks![0]!.path, "utf8"), "root-only read-only disk");
  // Idempotent.
  await removeJail(plan);
});

test("prepareJail starts from a clean jail: what an earlier run left (pid file, device nodes, files) is gone", { skip }, async () => {
  const base = mkdtempSync(join(dir, "stale-"));
  const s = settings(base);
  const spec = vmFiles("two");
  const ids = await claimJailIds(s, "vm-two");
  const plan = planJail({ ...spec, id: "vm-two" }, { ...s, ...ids });
  mkdirSync(join(plan.root, "dev", "net"), { recursive: true });
  writeFileSync(join(plan.root, "dev", "kvm"), "");
  writeFileSync(plan.pidFile, "999999999");
  writeFileSync(join(plan.root, "leftover"), "x");
  await prepareJail(plan);
  assert.deepEqual(readdirSync(plan.root).sort(), ["console.log", "disk1", "firecracker.log", "firecracker.metrics", "initrd", "rootfs", "snapshot-out", "vmlinux"]);
  await removeJail(plan);
  assert.deepEqual(readdirSync(join(base, "firecracker")), []);
});

test("prepareJail and removeJail refuse while the jail's Firecracker runs", { skip }, async () => {
  const base = mkdtempSync(join(dir, "busy-"));
  const s = settings(base);
  const spec = vmFiles("three");
  const { plan } = await openJail({ ...spec, id: "vm-three" }, s);
  // A process whose command line carries the jail id, as the jailed Firecracker's `--id` does.
  const fake = spawn("sh", ["-c", `sleep 30; : --id ${plan.jailId}`]);
  try {
    writeFileSync(plan.pidFile, String(fake.pid));
    await assert.rejects(removeJail(plan), (e) => isHyperfleetError(e) && e.code === "VMM_CONTROL_FAILED");
    await assert.rejects(prepareJail(plan), (e) => isHyperfleetError(e) && e.code === "VMM_CONTROL_FAILED");
    assert.ok(existsSync(plan.root));
  } finally {
    await killAndWait(fake);
  }
  await removeJail(plan);
  assert.equal(existsSync(plan.jailDir), false);
});

test("across file systems: read-only files are copied (the cost stated), a read-write disk is refused", { skip: skip || (shm ? false : "no /dev/shm (tmpfs) to put files on another file system") }, async () => {
  const base = mkdtempSync(join(dir, "xdev-"));
  const s = settings(base);
  const spec = vmFiles("four", join(shm!, "assets"));
  const { plan, linked, copied } = await openJail({ ...spec, id: "vm-four" }, s);
  assert.deepEqual(linked, ["/rootfs"]);
  assert.deepEqual(copied.map((c) => [c.jail, c.why]), [["/vmlinux", "other file system"], ["/initrd", "other file system"], ["/disk1", "not readable by the VM's uid"]]);
  for (const c of copied) assert.ok(c.bytes >= 0 && c.method !== undefined);
  assert.equal(readFileSync(join(plan.root, "vmlinux"), "utf8"), "kernel bytes");
  await removeJail(plan);

  const runOnShm = join(shm!, "run");
  mkdirSync(runOnShm, { recursive: true });
  writeFileSync(join(runOnShm, "rootfs.ext4"), "disk");
  await assert.rejects(openJail({ ...spec, id: "vm-five", rootDisk: { path: join(runOnShm, "rootfs.ext4") } }, s), (e) => isHyperfleetError(e) && e.code === "VMM_SPAWN_FAILED" && /one file system/.test(e.message));
  // The failed open gave its uid back and left no jail.
  assert.deepEqual(readdirSync(claimsDir(s)), []);
  assert.equal(lstatSync(join(runOnShm, "rootfs.ext4")).uid, 0);
});

test("removeJail removes the VM's cgroup (a real cgroup v2 directory), and refuses while a process is in it", { skip: skip || (cgroupRoot ? false : "no cgroup2 mounted") }, async () => {
  const base = mkdtempSync(join(dir, "cg-"));
  const s = settings(base);
  const spec = vmFiles("six");
  const { plan } = await openJail({ ...spec, id: "vm-six" }, s);
  // What the jailer does: <cgroup root>/<parent>/<id>, then the VMM's pid into cgroup.procs.
  mkdirSync(plan.cgroup.dir, { recursive: true });
  assert.ok(existsSync(join(plan.cgroup.dir, "cgroup.procs")), "a real cgroup directory");
  const sleeper = spawn("sleep", ["30"]);
  try {
    writeFileSync(join(plan.cgroup.dir, "cgroup.procs"), String(sleeper.pid));
    await assert.rejects(removeJail(plan), (e) => isHyperfleetError(e) && e.code === "VMM_CONTROL_FAILED" && /still has processes/.test(e.message));
    assert.ok(existsSync(plan.jailDir), "nothing else removed while the cgroup is busy");
  } finally {
    await killAndWait(sleeper);
  }
  // The cgroup empties once the process is reaped.
  for (let i = 0; i < 50 && readFileSync(join(plan.cgroup.dir, "cgroup.procs"), "utf8").trim() !== ""; i++) await new Promise((r) => setTimeout(r, 20));
  await removeJail(plan);
  assert.equal(existsSync(plan.cgroup.dir), false);
  assert.equal(existsSync(plan.jailDir), false);
  // The parent is the operator's (shared by every VM): never removed by a VM's cleanup.
  assert.ok(existsSync(join(cgroupRoot, cgroupParent)));
});

test("resolveJailerSettings: real paths (the jailer canonicalizes them), the chroot base made, a missing binary is HOST_TOOL_MISSING", { skip: cgroupRoot ? false : "no cgroup2 mounted" }, async () => {
  const bin = mkdtempSync(join(dir, "bin-"));
  writeFileSync(join(bin, "firecracker-v1.16.1-x86_64"), "#!/bin/sh\n", { mode: 0o755 });
  symlinkSync(join(bin, "firecracker-v1.16.1-x86_64"), join(bin, "firecracker"));
  writeFileSync(join(bin, "jailer"), "#!/bin/sh\n", { mode: 0o755 });
  const choice = { binary: join(bin, "jailer"), chrootBase: join(dir, "made", "jails"), cgroupParent: "hyperfleet", uidBase: 900_000, uidCount: 10, newPidNs: false };
  const s = await resolveJailerSettings(choice, join(bin, "firecracker"), 64);
  assert.equal(s.firecrackerBinary, join(bin, "firecracker-v1.16.1-x86_64"));
  assert.equal(s.chrootBase, join(dir, "made", "jails"));
  assert.ok(statSync(s.chrootBase).isDirectory());
  assert.equal(s.cgroupRoot, cgroupRoot);
  assert.equal(s.memOverheadMib, 64);
  await assert.rejects(resolveJailerSettings({ ...choice, binary: join(bin, "nope") }, join(bin, "firecracker"), 64), (e) => isHyperfleetError(e) && e.code === "HOST_TOOL_MISSING" && /--firecracker/.test(e.message));
});
