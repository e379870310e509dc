/**
 * The Firecracker driver against the stand-in process (test/vmm/firecracker-standin/), for what the
 * conformance suite does not ask: the exact requests it sends (from the stand-in's request log,
 * each checked against the API definition and compared with the pure builders), each error path
 * of a start and a restore (a coded error, and no process or runtime file left), per-VM drive
 * paths across a snapshot, adoption found by the /proc scan, and the VMM selection.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { constants, existsSync, mkdtempSync, rmSync } from "node:fs";
import { access, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { GuestAssets } from "../../src/assets/index.js";
import { HyperfleetError } from "../../src/core/errors.js";
import type { DiskSpec, VmHandle, VmSpec } from "../../src/core/ports/vmm-driver.js";
import { qcow2Overlays, rawCopies } from "../../src/vmm/disks.js";
import { FirecrackerApi, SPEC_PATH } from "../../src/vmm/firecracker/api.js";
import { buildConfigureRequests, buildRestoreRequests, type FcRequest } from "../../src/vmm/firecracker/config.js";
import { FirecrackerDriver, firecrackerHostPaths, withRunDirRelativeDisks } from "../../src/vmm/firecracker/driver.js";
import { findFirecrackersUnder, killFirecrackersIn } from "../../src/vmm/firecracker/scan.js";
import { FirecrackerContract } from "../../src/vmm/firecracker/spec.js";
import { hostTscKhz } from "../../src/vmm/host.js";
import { isAlive } from "../../src/vmm/process.js";
import { DriverRegistry, guestAssetsIn, selectVmm } from "../../src/vmm/registry.js";
import { buildVmSpec, devicesFor, resolveBootPaths } from "../../src/vmm/spec.js";
import { Vm } from "../../src/vmm/vm.js";
import { dataDir, removeStandinLeftovers, requestLog, runtimeFilesIn, standinWrapper } from "./firecracker-helpers.js";
import type { LogEntry } from "./firecracker-standin/api.js";

const BOOT_MS = 60_000;
const CASE_MS = 120_000;
const contract = new FirecrackerContract(SPEC_PATH);
const wrapper = standinWrapper();
const driver = (o: ConstructorParameters<typeof FirecrackerDriver>[0] = {}) => new FirecrackerDriver({ binary: wrapper.bin, ...o });
after(() => rmSync(wrapper.dir, { recursive: true, force: true }));
const wire = (r: FcRequest | LogEntry) => ({ method: r.method, path: r.path, body: r.body ?? null });

describe("Firecracker driver against the stand-in", { timeout: 10 * CASE_MS }, () => {
  let assets: GuestAssets;
  const dirs: string[] = [];
  const pids = new Set<number>();
  const guestDir = mkdtempSync(join("/var/tmp", "hf-fcg-"));

  before(async () => {
    assets = await guestAssetsIn(dataDir)();
  });

  after(async () => {
    for (const pid of pids) {
      if (await isAlive(pid)) process.kill(pid, "SIGKILL");
    }
    for (const pid of pids) {
      for (let i = 0; i < 200 && (await isAlive(pid)); i++) await sleep(10);
      await removeStandinLeftovers(pid);
    }
    for (const d of dirs) await rm(d, { recursive: true, force: true });
    rmSync(guestDir, { recursive: true, force: true });
  });

  async function tempDir(prefix = "hf-fd-"): Promise<string> {
    const d = await mkdtemp(join(tmpdir(), prefix));
    dirs.push(d);
    return d;
  }

  async function newSpec(o: { nics?: boolean; tap?: string; disk?: (runDir: string) => Promise<DiskSpec> } = {}): Promise<VmSpec> {
    const runDir = await tempDir();
    const devices = devicesFor("firecracker", o.nics ? [{ tap: o.tap ?? "hft0", mac: "06:00:ac:10:00:02" }] : []);
    const boot = resolveBootPaths({}, assets, devices);
    return buildVmSpec({
      id: `vm_fd${dirs.length}${process.pid}`,
      vcpuCount: 1,
      memSizeMib: 256,
      boot,
      devices,
      rootDisk: o.disk ? await o.disk(runDir) : await rawCopies.rootDisk(boot.rootfsPath, runDir),
      runDir,
      tscKhz: hostTscKhz(),
    });
  }

  const track = <T extends { pid: number }>(h: T): T => {
    pids.add(h.pid);
    return h;
  };

  /** Processes working in `dir`: a Firecracker of ours, and the stand-in's guest, run there. */
  async function processesIn(dir: string): Promise<number[]> {
    const found: number[] = [];
    for (const e of await readdir("/proc")) {
      if (!/^\d+$/.test(e)) continue;
      if ((await readlink(`/proc/${e}/cwd`).catch(() => "")) === dir && (await isAlive(Number(e)))) found.push(Number(e));
    }
    return found;
  }

  /** Nothing of the VM is left: no process (its guest dies with it, within a moment) and no runtime file. */
  async function assertNothingLeft(runDir: string): Promise<void> {
    let left = await processesIn(runDir);
    for (let i = 0; i < 100 && left.length > 0; i++) {
      await sleep(20);
      left = await processesIn(runDir);
    }
    assert.deepEqual(left, [], "no process works in the run dir");
    assert.deepEqual(runtimeFilesIn(existsSync(runDir) ? await readdir(runDir) : []), [], "no runtime file is left");
  }

  async function pidOf(runDir: string): Promise<number> {
    const meta = JSON.parse(await readFile(join(runDir, "meta.json"), "utf8")) as { pid: number | null };
    return meta.pid ?? -1;
  }

  test("start sends the documented sequence, each request valid against the API definition and equal to the builders'", { timeout: CASE_MS }, async () => {
    const spec = await newSpec({ nics: true });
    // A second writable disk in the run dir (given by its bare name) and a read-only one outside it (absolute).
    await writeFile(join(spec.runDir, "data.raw"), "");
    await truncate(join(spec.runDir, "data.raw"), 8 * 1024 * 1024);
    const shared = join(await tempDir(), "shared.raw");
    await writeFile(shared, "");
    await truncate(shared, 1024 * 1024);
    spec.extraDisks = [{ path: join(spec.runDir, "data.raw"), format: "raw" }, { path: shared, format: "raw", readOnly: true }];
    spec.guestCid = 7;

    const vm = await Vm.boot(driver(), spec, BOOT_MS);
    track(vm.handle);
    const sent = requestLog(spec.runDir);
    const expected = buildConfigureRequests(withRunDirRelativeDisks(spec), firecrackerHostPaths(spec), { guestCid: 7 });
    assert.deepEqual(sent.map(wire), expected.map(wire));
    for (const r of sent) {
      assert.equal(r.status, 204, `${r.method} ${r.path} answered ${r.status} ${r.fault_message ?? ""}`);
      assert.equal(contract.validateRequest(r.method, r.path, r.body), null, `${r.method} ${r.path} is valid`);
    }
    const drives = sent.filter((r) => r.path.startsWith("/drives/")).map((r) => (r.body as { path_on_host: string }).path_on_host);
    assert.deepEqual(drives, ["rootfs.ext4", "data.raw", shared], "disks in the run dir by their bare name, others absolute");
    assert.equal(await readlink(`/proc/${vm.pid}/cwd`), spec.runDir, "Firecracker works in the run dir, where those names resolve");
    assert.deepEqual(sent.map((r) => r.path).slice(0, 4), ["/logger", "/metrics", "/serial", "/boot-source"]);
    assert.equal(sent.at(-1)?.path, "/actions");

    // Exec and files end to end: agent protocol over the hybrid vsock the stand-in hands to a real hf-agent.
    const agent = vm.agent!;
    const r = await agent.exec(["sh", "-c", "echo out; echo err >&2; exit 4"]);
    assert.deepEqual([r.exitCode, r.stdout.toString(), r.stderr.toString()], [4, "out\n", "err\n"]);
    await agent.writeFile(`${guestDir}/f/one`, Buffer.from("through the driver\n"), { mkdirs: true });
    assert.equal((await agent.readFile(`${guestDir}/f/one`)).toString(), "through the driver\n");

    // Pause and resume are PATCH /vm; a second pause sends nothing (the VM says it is paused).
    const n = requestLog(spec.runDir).length;
    await vm.pause();
    await vm.pause();
    assert.equal((await vm.status()).state, "paused");
    await vm.resume(BOOT_MS);
    const control = requestLog(spec.runDir).slice(n).filter((e) => e.method !== "GET");
    assert.deepEqual(control.map(wire), [
      { method: "PATCH", path: "/vm", body: { state: "Paused" } },
      { method: "PATCH", path: "/vm", body: { state: "Resumed" } },
    ]);

    // Stop: the Vm layer's agent power-off comes first; requestStop alone is Ctrl+Alt+Del.
    vm.agent?.close();
    await vm.handle.requestStop(20_000);
    const st = await vm.exited();
    assert.deepEqual([st.exitCode, st.signal, st.detectedBy], [0, null, "child-exit"], "Firecracker ended by itself");
    assert.deepEqual(wire(requestLog(spec.runDir).at(-1)!), { method: "PUT", path: "/actions", body: { action_type: "SendCtrlAltDel" } });
    await vm.release();
    await assertNothingLeft(spec.runDir);
  });

  // A refusal at each configure step the host can provoke: the start rejects with the step and
  // Firecracker's words, and leaves nothing.
  const faults: { step: string; break: (s: VmSpec) => Promise<void> | void }[] = [
    { step: "PUT /boot-source", break: (s) => void (s.kernelPath = join(s.runDir, "no-such-vmlinux")) },
    { step: "PUT /boot-source", break: (s) => void (s.initrdPath = join(s.runDir, "no-such-initrd")) },
    { step: "PUT /drives/rootfs", break: (s) => void (s.rootDisk = { path: join(s.runDir, "missing.ext4"), format: "raw" }) },
    { step: "PUT /drives/disk1", break: (s) => void (s.extraDisks = [{ path: join(s.runDir, "missing.raw"), format: "raw" }]) },
    { step: "PUT /vsock", break: (s) => void (s.agentSocket = join(s.runDir, "no-such-dir", "v.sock")) },
  ];
  for (const [i, f] of faults.entries()) {
    test(`a fault_message on ${f.step} (${i + 1}) rejects the start with VMM_SPAWN_FAILED and leaves nothing`, { timeout: CASE_MS }, async () => {
      const spec = await newSpec();
      await f.break(spec);
      const err = await driver()
        .start(spec)
        .then((h) => track(h), (e: unknown) => e);
      assert.ok(err instanceof HyperfleetError, `rejected, got ${String(err)}`);
      assert.equal(err.code, "VMM_SPAWN_FAILED");
      assert.match(err.message, new RegExp(`Firecracker refused ${f.step.replace("/", "\\/")} \\(HTTP 400\\)`));
      assert.equal(typeof err.details?.faultMessage, "string");
      assert.ok(err.message.includes(String(err.details?.faultMessage)), "Firecracker's words are in the message");
      const last = requestLog(spec.runDir).at(-1)!;
      assert.equal(`${last.method} ${last.path}`, f.step, "nothing was sent after the refused step");
      assert.equal(last.status, 400);
      await assertNothingLeft(spec.runDir);
    });
  }

  test("a request the API definition refuses is never sent: INTERNAL, and nothing is left", { timeout: CASE_MS }, async () => {
    const spec = await newSpec();
    spec.vcpus = 0;
    const err = await driver()
      .start(spec)
      .then((h) => track(h), (e: unknown) => e);
    assert.ok(err instanceof HyperfleetError && err.code === "INTERNAL", `INTERNAL, got ${String(err)}`);
    assert.match(err.message, /PUT \/machine-config/);
    assert.ok(!requestLog(spec.runDir).some((e) => e.path === "/machine-config"), "the invalid request did not reach Firecracker");
    await assertNothingLeft(spec.runDir);
  });

  test("a missing firecracker binary is HOST_TOOL_MISSING, and nothing is left", { timeout: CASE_MS }, async () => {
    const spec = await newSpec();
    const err = await new FirecrackerDriver({ binary: join(spec.runDir, "no-firecracker") }).start(spec).then((h) => track(h), (e: unknown) => e);
    assert.ok(err instanceof HyperfleetError && err.code === "HOST_TOOL_MISSING", `HOST_TOOL_MISSING, got ${String(err)}`);
    await assertNothingLeft(spec.runDir);
  });

  test("stale sockets and a stale pidfile of an earlier run do not stop a start", { timeout: CASE_MS }, async () => {
    const spec = await newSpec();
    const paths = firecrackerHostPaths(spec);
    // Files where the sockets go, as a killed Firecracker leaves them (Firecracker refuses to bind over one).
    await writeFile(paths.apiSocket, "");
    await writeFile(paths.vsockUds, "stale");
    await writeFile(paths.pidFile, "1\n");
    const vm = await Vm.boot(driver(), spec, BOOT_MS);
    track(vm.handle);
    assert.ok((await vm.agent!.ping()) >= 0);
    assert.equal(Number((await readFile(paths.pidFile, "utf8")).trim()), vm.pid, "the pidfile names the new process");
    await vm.kill();
    await assertNothingLeft(spec.runDir);
  });

  test("a Firecracker that never listens is a start timeout; it is killed and nothing is left", { timeout: CASE_MS }, async () => {
    const spec = await newSpec();
    // A real process that does not serve the API: sh execs sleep under the same pid.
    const d = driver({ socketTimeoutMs: 500, launcher: ({ apiSocket, spec: s }) => ({ file: "sh", args: ["-c", "exec sleep 30", "firecracker", "--api-sock", apiSocket], cwd: s.runDir }) });
    const t0 = Date.now();
    const err = await d.start(spec).then((h) => track(h), (e: unknown) => e);
    assert.ok(err instanceof HyperfleetError && err.code === "VM_START_TIMEOUT", `VM_START_TIMEOUT, got ${String(err)}`);
    assert.ok(Date.now() - t0 < 10_000);
    await assertNothingLeft(spec.runDir);
  });

  test("a Firecracker that dies while being configured: a coded error naming the step and how it ended; nothing is left", { timeout: CASE_MS }, async () => {
    const spec = await newSpec();
    const paths = firecrackerHostPaths(spec);
    const starting = driver().start(spec).then((h) => track(h), (e: unknown) => e);
    // Freeze it the moment it listens (so the configuration is in flight), then kill it.
    let pid = -1;
    for (let i = 0; i < 20_000 && !(existsSync(paths.apiSocket) && (pid = await pidOf(spec.runDir).catch(() => -1)) > 0); i++) await sleep(1);
    assert.ok(pid > 0, "the process listened");
    pids.add(pid);
    process.kill(pid, "SIGSTOP");
    await sleep(100);
    process.kill(pid, "SIGKILL");
    const err = await starting;
    assert.ok(err instanceof HyperfleetError, `rejected, got ${String(err)}`);
    assert.equal(err.code, "VMM_SPAWN_FAILED");
    assert.match(err.message, /exited \(signal SIGKILL\) during (PUT|waiting)/);
    await assertNothingLeft(spec.runDir);
  });

  test("snapshots: pause + Full create; a clone restores with its own vsock, TAP and disk; a suspend comes back; failures are coded", { timeout: 3 * CASE_MS }, async () => {
    const d = driver();
    const spec = await newSpec({ nics: true, tap: "hft-src" });
    const src = await Vm.boot(d, spec, BOOT_MS);
    track(src.handle);
    const snapDir = await tempDir("hf-fds-");

    await assert.rejects(src.handle.snapshot({ dir: join(snapDir, "missing"), purpose: "clone" }), (e: unknown) => e instanceof HyperfleetError && e.code === "SNAPSHOT_FAILED" && /PUT \/snapshot\/create/.test(e.message));
    assert.equal((await src.status()).state, "paused", "a failed snapshot leaves the guest paused");
    const n = requestLog(spec.runDir).length;
    const snap = await src.handle.snapshot({ dir: snapDir, purpose: "clone" });
    const sent = requestLog(spec.runDir).slice(n).filter((e) => e.method !== "GET");
    assert.deepEqual(sent.map(wire), [
      { method: "PUT", path: "/snapshot/create", body: { snapshot_type: "Full", snapshot_path: `${snapDir}/state.tmp`, mem_file_path: `${snapDir}/memory.tmp` } },
    ], "already paused: no second PATCH /vm");
    assert.deepEqual([snap.stateFile, snap.memoryFile, snap.disk], [join(snapDir, "state"), join(snapDir, "memory"), { path: join(snapDir, "disk.raw"), format: "raw" }]);
    assert.deepEqual((await readdir(snapDir)).sort(), ["disk.raw", "memory", "state"], "complete files only");
    assert.equal((await stat(snap.memoryFile!)).size, 256 * 1024 * 1024);
    assert.ok(snap.sizeBytes > 0);
    await src.resume(BOOT_MS);

    // A clone: its own run dir with its own disk (a copy of the frozen one) under the same name.
    const cspec = await newSpec({ nics: true, tap: "hft-clone", disk: (runDir) => rawCopies.cloneDisk(snap.disk!, runDir) });
    const clone = await Vm.restore(d, cspec, snap, BOOT_MS);
    track(clone.handle);
    const loaded = requestLog(cspec.runDir);
    const expected = buildRestoreRequests(cspec, firecrackerHostPaths(cspec), { statePath: snap.stateFile, memPath: snap.memoryFile!, resume: true });
    assert.deepEqual(loaded.map(wire), expected.map(wire));
    for (const r of loaded) assert.equal(contract.validateRequest(r.method, r.path, r.body), null);
    assert.deepEqual(loaded.at(-1)?.body, {
      snapshot_path: snap.stateFile,
      mem_backend: { backend_type: "File", backend_path: snap.memoryFile },
      resume_vm: true,
      vsock_override: { uds_path: join(cspec.runDir, "vsock.sock") },
      network_overrides: [{ iface_id: "eth0", host_dev_name: "hft-clone" }],
    });
    assert.equal((await clone.agent!.exec(["echo", "clone"])).stdout.toString(), "clone\n");
    // The drive was recorded as `rootfs.ext4`: the clone's process resolves it in its own run dir.
    const cfg = (await new FirecrackerApi(firecrackerHostPaths(cspec).apiSocket).send({ method: "GET", path: "/vm/config" })).body as { drives: { path_on_host: string }[] };
    assert.equal(cfg.drives[0]?.path_on_host, "rootfs.ext4");
    assert.equal(await readlink(`/proc/${clone.pid}/cwd`), cspec.runDir);
    await clone.kill();

    // Without its own disk a clone cannot load (Firecracker reopens the recorded path, relative to
    // its cwd), and Firecracker ends after a failed load: a process that dies while configured.
    const bare = await newSpec({ nics: true, tap: "hft-bare", disk: (runDir) => Promise.resolve({ path: join(runDir, "rootfs.ext4"), format: "raw" }) });
    const err = await d.restore(bare, snap).then((h) => track(h), (e: unknown) => e);
    assert.ok(err instanceof HyperfleetError && err.code === "SNAPSHOT_FAILED", `SNAPSHOT_FAILED, got ${String(err)}`);
    assert.match(err.message, /PUT \/snapshot\/load/);
    assert.match(String(err.details?.faultMessage), /rootfs\.ext4/);
    await assertNothingLeft(bare.runDir);

    // Missing and damaged snapshots.
    await assert.rejects(d.restore(bare, { ...snap, stateFile: join(snapDir, "nope") }), (e: unknown) => e instanceof HyperfleetError && e.code === "SNAPSHOT_NOT_FOUND");
    await assert.rejects(d.restore({ ...bare, memMib: 512 }, snap), (e: unknown) => e instanceof HyperfleetError && e.code === "SNAPSHOT_INCOMPATIBLE");
    const damaged = join(await tempDir("hf-fds-"), "state");
    await writeFile(damaged, (await readFile(snap.stateFile)).subarray(0, 8));
    const dspec = await newSpec({ nics: true, tap: "hft-dmg", disk: (runDir) => rawCopies.cloneDisk(snap.disk!, runDir) });
    const derr = await d.restore(dspec, { ...snap, stateFile: damaged }).then((h) => track(h), (e: unknown) => e);
    assert.ok(derr instanceof HyperfleetError && derr.code === "SNAPSHOT_FAILED", `SNAPSHOT_FAILED, got ${String(derr)}`);
    await assertNothingLeft(dspec.runDir);

    // Suspend: state and memory, the disk stays the VM's; it comes back in the same run dir.
    const susDir = await tempDir("hf-fds-");
    const sus = await src.handle.snapshot({ dir: susDir, purpose: "suspend" });
    assert.deepEqual([sus.purpose, sus.disk, sus.memoryFile], ["suspend", null, join(susDir, "memory")]);
    await src.kill();
    const back = await Vm.restore(d, spec, sus, BOOT_MS);
    track(back.handle);
    assert.notEqual(back.pid, src.pid);
    assert.equal((await back.agent!.exec(["echo", "back"])).stdout.toString(), "back\n");
    await back.kill();
    await assertNothingLeft(spec.runDir);
  });

  test("adopt without meta.json or pidfile: found by the /proc scan (its cwd), killable by run dir", { timeout: CASE_MS }, async () => {
    const spec = await newSpec();
    const h = track(await driver().start(spec));
    h.detach();
    assert.equal(await driver().adopt("vm_other", spec.runDir), null, "the recorded id must match");
    await rm(join(spec.runDir, "meta.json"));
    await rm(join(spec.runDir, "firecracker.pid"));
    const adopted: VmHandle | null = await driver().adopt(spec.id, spec.runDir);
    assert.ok(adopted, "adopted");
    assert.equal(adopted.pid, h.pid);
    assert.equal((await adopted.status()).state, "running");
    assert.deepEqual((await findFirecrackersUnder(dirname(spec.runDir))).filter((v) => v.runDir === spec.runDir).map((v) => v.pid), [h.pid]);
    assert.deepEqual(await killFirecrackersIn(spec.runDir), [h.pid]);
    const st = await adopted.exited();
    assert.equal(st.detectedBy, "poll");
    assert.equal(await isAlive(h.pid), false);
    assert.equal(await driver().adopt(spec.id, spec.runDir), null, "a dead VMM is not adopted");
    await adopted.cleanup();
    await assertNothingLeft(spec.runDir);
  });

  test("requestStop rejects with VMM_CONTROL_FAILED when the guest ignores Ctrl+Alt+Del (a frozen one); kill then ends it", { timeout: CASE_MS }, async () => {
    const spec = await newSpec();
    const h = track(await driver().start(spec));
    await h.pause();
    const t0 = Date.now();
    await assert.rejects(h.requestStop(1_000), (e: unknown) => e instanceof HyperfleetError && e.code === "VMM_CONTROL_FAILED" && /Ctrl\+Alt\+Del/.test(e.message));
    assert.ok(Date.now() - t0 >= 1_000, "it waited the whole timeout");
    assert.equal((await h.status()).state, "paused");
    await h.kill();
    assert.equal((await h.exited()).signal, "SIGKILL");
    await h.cleanup();
    await assertNothingLeft(spec.runDir);
  });

  test("fingerprint names Firecracker's version", async () => {
    assert.equal(await driver().fingerprint(), "firecracker:Firecracker v1.16.1");
  });
});

describe("VMM selection", () => {
  const dirs: string[] = [];
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  const cacheDir = () => {
    const d = mkdtempSync(join(tmpdir(), "hf-fsel-"));
    dirs.push(d);
    return d;
  };
  const assets = guestAssetsIn(dataDir);

  test("qemu and firecracker as configured; auto without a firecracker binary is QEMU at once, no probe", async () => {
    const q = new DriverRegistry({ vmm: "qemu", accel: "tcg", cacheDir: cacheDir(), assets });
    assert.deepEqual([q.kind, q.disks], ["qemu", qcow2Overlays]);
    const f = new DriverRegistry({ vmm: "firecracker", accel: "auto", cacheDir: cacheDir(), assets, firecrackerBinary: wrapper.bin });
    assert.deepEqual([f.kind, f.disks], ["firecracker", rawCopies]);
    const fd = await f.driver();
    assert.deepEqual([fd.kind, fd.accel], ["firecracker", "kvm"]);
    const dir = cacheDir();
    const a = new DriverRegistry({ vmm: "auto", accel: "tcg", cacheDir: dir, assets, firecrackerBinary: join(dir, "no-firecracker") });
    assert.equal(a.kind, "qemu");
    assert.equal((await a.driver()).kind, "qemu");
    assert.equal(existsSync(join(dir, "vmm.json")), false, "nothing probed, nothing cached");
  });

  test("auto with a binary: a probe guest decides, and the verdict is cached", { timeout: CASE_MS }, async () => {
    const dir = cacheDir();
    // The probe SIGKILLs its stand-in, which then leaves its guest's socket dir: ours are the new
    // ones whose process is gone.
    const standinDirs = async () => (await readdir("/var/tmp")).filter((f) => f.startsWith("hf-fc-standin-"));
    const before = new Set(await standinDirs());
    const kvm = await access("/dev/kvm", constants.R_OK | constants.W_OK).then(
      () => true,
      () => false,
    );
    const first = await selectVmm({ vmm: "auto", accel: "tcg", cacheDir: dir, assets, firecrackerBinary: wrapper.bin });
    // The stand-in boots its "guest" whatever the host: with /dev/kvm accessible the probe passes.
    assert.equal(first.kind, kvm ? "firecracker" : "qemu", first.reason);
    const cached = JSON.parse(await readFile(join(dir, "vmm.json"), "utf8")) as { usable: boolean; key: string };
    assert.equal(cached.usable, kvm);
    // A cached verdict is taken as it is (no second probe): change it and ask again.
    await writeFile(join(dir, "vmm.json"), JSON.stringify({ ...cached, usable: !kvm, reason: "edited" }));
    assert.equal((await selectVmm({ vmm: "auto", accel: "tcg", cacheDir: dir, assets, firecrackerBinary: wrapper.bin })).kind, kvm ? "qemu" : "firecracker");
    assert.equal(existsSync(join(dir, "probe")) ? (await readdir(join(dir, "probe"))).length : 0, 0, "the probe's run dir is gone");
    for (const f of await standinDirs()) {
      const pid = Number(f.slice("hf-fc-standin-".length));
      if (!before.has(f) && !(await isAlive(pid))) await removeStandinLeftovers(pid);
    }
  });

  test("auto with a binary whose guest does not boot: QEMU, with the reason", { timeout: CASE_MS }, async () => {
    const dir = cacheDir();
    const bad = join(dir, "firecracker");
    await writeFile(bad, "#!/bin/sh\necho 'cannot run here' >&2\nexit 1\n", { mode: 0o755 });
    await mkdir(join(dir, "c"));
    const v = await selectVmm({ vmm: "auto", accel: "tcg", cacheDir: join(dir, "c"), assets, firecrackerBinary: bad });
    assert.equal(v.kind, "qemu");
    assert.match(v.reason, /Firecracker not used/);
  });
});
