/**
 * The Firecracker driver with the jailer on (HYPERFLEET_JAILER=on), against the jailer stand-in
 * (test/vmm/jailer-standin/) that execs the Firecracker stand-in chrooted in the jail as the VM's
 * uid: a VM starts and its agent runs exec and files; the requests carry jail paths only and
 * validate against the API definition; the jail's files are owned as the plan says; snapshot and
 * restore; adoption by a fresh driver; delete leaves no jail, cgroup dir or uid claim.
 */
import { after, before, describe, test } from "node:test";
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { mkdtemp, readdir, readFile, readlink, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { GuestAssets } from "../../src/assets/index.js";
import type { VmSpec } from "../../src/core/ports/vmm-driver.js";
import { rawCopies } from "../../src/vmm/disks.js";
import { SPEC_PATH } from "../../src/vmm/firecracker/api.js";
import { FirecrackerDriver } from "../../src/vmm/firecracker/driver.js";
import type { FirecrackerHandle } from "../../src/vmm/firecracker/handle.js";
import { claimsDir, resolveJailerSettings } from "../../src/vmm/firecracker/jailer.js";
import { planJail, type JailerSettings } from "../../src/vmm/firecracker/jailer-layout.js";
import { HyperfleetError } from "../../src/core/errors.js";
import { parseJailerArgs } from "./jailer-standin/args.js";
import { FirecrackerContract } from "../../src/vmm/firecracker/spec.js";
import { isFirecrackerInJail } from "../../src/vmm/firecracker/scan.js";
import { hostTscKhz } from "../../src/vmm/host.js";
import { isAlive } from "../../src/vmm/process.js";
import { DriverRegistry, guestAssetsIn } from "../../src/vmm/registry.js";
import { buildVmSpec, devicesFor, resolveBootPaths } from "../../src/vmm/spec.js";
import { Vm } from "../../src/vmm/vm.js";
import { dataDir, removeStandinLeftovers, requestLog, standinWrapper } from "./firecracker-helpers.js";

const JAILER_STANDIN = join(import.meta.dirname, "jailer-standin", "jailer");
const BOOT_MS = 60_000;
const CASE_MS = 120_000;
const isRoot = process.getuid?.() === 0;
const contract = new FirecrackerContract(SPEC_PATH);
const wrapper = standinWrapper();
// One file system for run dirs and jails: a read-write disk is hard-linked into the jail.
const base = mkdtempSync(join(tmpdir(), "hf-fj-"));
after(() => {
  rmSync(wrapper.dir, { recursive: true, force: true });
  rmSync(base, { recursive: true, force: true });
});

describe("Firecracker driver through the jailer (stand-ins)", { skip: isRoot ? false : "needs root (the jailer chroots and changes uid)", timeout: 10 * CASE_MS }, () => {
  let assets: GuestAssets;
  let settings: JailerSettings;
  const choice = () => ({ binary: JAILER_STANDIN, chrootBase: join(base, "jails"), cgroupParent: "hyperfleet-test", uidBase: 960_000, uidCount: 8, newPidNs: false, memOverheadMib: 64 });
  const pids = new Set<number>();
  let n = 0;

  before(async () => {
    assets = await guestAssetsIn(dataDir)();
    settings = await resolveJailerSettings(choice(), wrapper.bin, 64);
  });

  after(async () => {
    for (const pid of pids) if (await isAlive(pid)) process.kill(pid, "SIGKILL");
    for (const pid of pids) {
      for (let i = 0; i < 200 && (await isAlive(pid)); i++) await sleep(10);
      await removeStandinLeftovers(pid);
    }
  });

  // As the daemon makes it with HYPERFLEET_JAILER=on: a registry per call, so each is a fresh driver.
  const driver = () => new DriverRegistry({ kind: "firecracker", accel: "kvm", cacheDir: base, assets: guestAssetsIn(dataDir), firecrackerBinary: wrapper.bin, jailer: choice() }).driver();
  const track = <T extends { pid: number }>(h: T): T => {
    pids.add(h.pid);
    return h;
  };

  async function newSpec(): Promise<VmSpec> {
    const runDir = await mkdtemp(join(base, "run-"));
    const devices = devicesFor("firecracker");
    const boot = resolveBootPaths({}, assets, devices);
    return buildVmSpec({ id: `vm_fj${n++}${process.pid}`, vcpuCount: 1, memSizeMib: 256, boot, devices, rootDisk: await rawCopies.rootDisk(boot.rootfsPath, runDir), runDir, tscKhz: hostTscKhz() });
  }

  /** No jail dir, no uid claim, no cgroup dir of `h`'s jail is left. */
  async function assertJailGone(h: FirecrackerHandle): Promise<void> {
    const jail = h.jail!;
    assert.equal(existsSync(jail.jailDir), false, `${jail.jailDir} is removed`);
    assert.equal(existsSync(jail.cgroup.dir), false, `${jail.cgroup.dir} is removed`);
    const claims = await readdir(claimsDir(settings)).catch(() => []);
    for (const c of claims) assert.notEqual(await readlink(join(claimsDir(settings), c)).catch(() => ""), jail.jailId, `the uid claim ${c} is released`);
  }

  test("a jailed VM starts; exec and files work; its requests name jail paths only and validate; its files are owned as planned; delete removes the jail", { timeout: CASE_MS }, async () => {
    const spec = await newSpec();
    const vm = await Vm.boot(await driver(), spec, BOOT_MS);
    const h = track(vm.handle as FirecrackerHandle);
    const jail = h.jail;
    assert.ok(jail, "the handle is jailed");
    // The VMM runs pivoted into the jail as the VM's uid.
    assert.ok(await isFirecrackerInJail(h.pid, jail.root), "its root is the jail's");
    assert.equal(await readlink(`/proc/${h.pid}/cwd`), "/", "its cwd is the jail's / (seen from outside its mount namespace)");
    const st = (await readFile(`/proc/${h.pid}/status`, "utf8")).match(/^Uid:\s+(\d+)/m)?.[1];
    assert.equal(Number(st), jail.uid, "Firecracker runs as the jail's uid");
    assert.equal(Number((await readFile(jail.pidFile, "utf8")).trim()), h.pid, "the jailer's pid file names the VMM");

    const agent = vm.agent!;
    const r = await agent.exec(["sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert.deepEqual([r.exitCode, r.stdout.toString(), r.stderr.toString()], [3, "out\n", "err\n"]);
    const data = Buffer.from(`jailed ${spec.id}\n`);
    const f = join(await agentTmp(vm), "jailed.txt");
    await agent.writeFile(f, data);
    assert.deepEqual(await agent.readFile(f), data);

    const log = requestLog(jail.root);
    assert.ok(log.length >= 5, `${log.length} requests logged`);
    for (const e of log) {
      for (const p of pathsIn(e.body)) assert.ok(p.startsWith("/") && !p.startsWith(jail.root) && !p.startsWith(spec.runDir) && !p.startsWith(dataDir), `${e.method} ${e.path}: ${p} is a jail path`);
      assert.equal(contract.validateRequest(e.method, e.path, e.body ?? undefined), null, `${e.method} ${e.path} validates against the API definition`);
    }
    const rootfs = await stat(join(jail.root, "rootfs"));
    assert.deepEqual([rootfs.uid, rootfs.gid, rootfs.mode & 0o777], [jail.uid, jail.gid, 0o600], "the VM's disk: its uid, 0600");
    assert.equal((await stat(spec.rootDisk.path)).ino, rootfs.ino, "the disk is linked, not copied");
    for (const o of jail.outputs) assert.equal((await stat(join(jail.root, o))).uid, jail.uid, `${o} is the VM's`);
    assert.equal((await stat(jail.root)).uid, jail.uid, "the jailer gave the root to the VM's uid");
    const kernel = await stat(join(jail.root, "vmlinux"));
    assert.equal(kernel.uid, 0, "the shared kernel keeps its owner");

    await vm.kill();
    await h.cleanup();
    await assertJailGone(h);
    assert.equal((await stat(spec.rootDisk.path)).uid, 0, "the machine's disk is root's again");
  });

  test("snapshot and restore jailed: files written in the jail come out to the snapshot dir; a clone restores from them in its own jail; a fresh driver adopts it", { timeout: CASE_MS }, async () => {
    const spec = await newSpec();
    const src = await Vm.boot(await driver(), spec, BOOT_MS);
    const h = track(src.handle as FirecrackerHandle);
    await src.agent!.writeFile("/tmp/before", Buffer.from("written before the snapshot\n"));
    const dir = await mkdtemp(join(base, "snap-"));
    const snap = await h.snapshot({ dir, purpose: "clone" });
    for (const f of [snap.stateFile, snap.memoryFile!, snap.disk!.path]) {
      assert.ok(f.startsWith(`${dir}/`) && existsSync(f), `${f} is in the snapshot dir`);
      assert.equal((await stat(f)).uid, 0, `${f} is root's, not the VM uid's`);
    }
    assert.deepEqual(await readdir(h.jail!.snapshotOut.host), [], "nothing is left in the jail's snapshot-out");
    const created = requestLog(h.jail!.root).find((e) => e.path === "/snapshot/create");
    assert.deepEqual([(created?.body as { snapshot_path?: string }).snapshot_path, (created?.body as { mem_file_path?: string }).mem_file_path], ["/snapshot-out/state.tmp", "/snapshot-out/memory.tmp"]);
    await src.kill();
    await h.cleanup();
    await assertJailGone(h);

    const cloneSpec = await newSpec();
    await rm(cloneSpec.rootDisk.path);
    const disk = await rawCopies.cloneDisk(snap.disk!, cloneSpec.runDir);
    const clone = await Vm.restore(await driver(), { ...cloneSpec, rootDisk: disk }, snap, BOOT_MS);
    const c = track(clone.handle as FirecrackerHandle);
    assert.ok(await isFirecrackerInJail(c.pid, c.jail!.root), "the clone runs in its own jail");
    assert.deepEqual(await clone.agent!.readFile("/tmp/before"), Buffer.from("written before the snapshot\n"), "the clone has the source's /tmp");
    const load = requestLog(c.jail!.root).find((e) => e.path === "/snapshot/load");
    assert.ok(load, "a /snapshot/load was sent");
    assert.equal(contract.validateRequest(load.method, load.path, load.body ?? undefined), null);
    assert.equal((load.body as { snapshot_path?: string }).snapshot_path, "/snapshot/state");
    assert.equal((load.body as { mem_backend?: { backend_path?: string } }).mem_backend?.backend_path, "/snapshot/memory");

    // Adoption after a daemon restart: a fresh driver, which never saw the VM, finds it from meta.json.
    c.detach();
    const again = await Vm.adopt(await driver(), cloneSpec.id, cloneSpec.runDir);
    assert.ok(again, "a fresh driver adopts the jailed VM");
    const adopted = again.handle as FirecrackerHandle;
    assert.equal(adopted.pid, c.pid);
    assert.ok(adopted.jail, "the adopted handle knows the jail");
    assert.equal((await adopted.status()).state, "running");
    const r = await again.agent!.exec(["cat", "/tmp/before"]);
    assert.equal(r.stdout.toString(), "written before the snapshot\n");
    await adopted.kill();
    await adopted.cleanup();
    await assertJailGone(adopted);
  });

  test("the jailer stand-in takes the driver's argv and refuses what jailer v1.16.1 refuses", async () => {
    const spec = await newSpec();
    const plan = planJail(spec, { ...settings, uid: settings.uidBase, gid: settings.uidBase });
    const parsed = parseJailerArgs(plan.argv.slice(1));
    assert.deepEqual([parsed.id, parsed.execFile, parsed.uid, parsed.cgroupVersion, parsed.firecrackerArgs], [plan.jailId, settings.firecrackerBinary, settings.uidBase, 2, ["--api-sock", "/firecracker.sock"]]);
    const run = (args: string[]) => spawnSync(JAILER_STANDIN, args, { encoding: "utf8" });
    const unknown = run([...plan.argv.slice(1, -3), "--chroot", "/x", "--", "--api-sock", "/firecracker.sock"]);
    assert.equal(unknown.status, 1);
    assert.match(unknown.stderr, /Found argument 'chroot' which wasn't expected/);
    const noUid = run(["--id", "a", "--exec-file", settings.firecrackerBinary, "--gid", "1"]);
    assert.equal(noUid.status, 1);
    assert.match(noUid.stderr, /Required argument 'uid' was not provided/);
    const badId = run(["--id", "a_b", "--exec-file", settings.firecrackerBinary, "--uid", "1", "--gid", "1"]);
    assert.match(badId.stderr, /Invalid instance ID: a_b/);
  });

  test("--netns: the jailer joins the VM's network namespace before Firecracker runs", { timeout: CASE_MS }, async () => {
    const ns = `hft-${randomBytes(3).toString("hex")}-jail`;
    execFileSync("ip", ["netns", "add", ns]);
    try {
      const spec = { ...(await newSpec()), netns: `/run/netns/${ns}` };
      const vm = await Vm.boot(await driver(), spec, BOOT_MS);
      const h = track(vm.handle as FirecrackerHandle);
      const [theirs, want] = await Promise.all([stat(`/proc/${h.pid}/ns/net`), stat(`/run/netns/${ns}`)]);
      assert.equal(theirs.ino, want.ino, "Firecracker is in the VM's namespace");
      assert.ok(h.jail!.argv.includes("--netns"), "through the jailer's --netns, not nsenter around it");
      assert.equal((await vm.agent!.exec(["true"])).exitCode, 0);
      await vm.kill();
      await h.cleanup();
      await assertJailGone(h);
    } finally {
      execFileSync("ip", ["netns", "delete", ns]);
    }
  });

  test("HYPERFLEET_JAILER_NEW_PID_NS=on is refused as not supported yet, before any jail is made", async () => {
    const spec = await newSpec();
    const d = new FirecrackerDriver({ jailer: { ...settings, newPidNs: true } });
    await assert.rejects(d.start(spec), (e: unknown) => e instanceof HyperfleetError && e.code === "NOT_SUPPORTED_YET");
    assert.deepEqual(await readdir(claimsDir(settings)).catch(() => []), [], "no uid claim was made");
  });

  test("a jailed start that fails (no such network namespace) leaves no process, jail or uid claim", { timeout: CASE_MS }, async () => {
    const spec = await newSpec();
    const err = await (await driver()).start({ ...spec, netns: `/run/netns/hft-${process.pid}-none` }).then(
      (h) => (track(h), null),
      (e: unknown) => e,
    );
    assert.ok(err instanceof HyperfleetError && err.code === "VMM_SPAWN_FAILED", `VMM_SPAWN_FAILED, got ${String(err)}`);
    const jails = await readdir(join(settings.chrootBase, "firecracker")).catch(() => []);
    assert.deepEqual(jails.filter((j) => j.includes(`${process.pid}`)), [], "no jail is left");
    assert.deepEqual(await readdir(claimsDir(settings)).catch(() => []), [], "no uid claim is left");
  });
});

/** A directory the stand-in's guest may write (its files are the host's, under the guest's view). */
async function agentTmp(vm: Vm): Promise<string> {
  const r = await vm.agent!.exec(["sh", "-c", "d=$(mktemp -d) && echo $d"]);
  return r.stdout.toString().trim();
}

/** Every string field that names a file in a request body. */
function pathsIn(body: unknown): string[] {
  if (body === null || typeof body !== "object") return [];
  const out: string[] = [];
  for (const [k, v] of Object.entries(body)) {
    if (typeof v === "string" && /path|uds|sock|file/.test(k)) out.push(v);
    else if (typeof v === "object") out.push(...pathsIn(v));
  }
  return out;
}
