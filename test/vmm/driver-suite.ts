/**
 * The VMM driver conformance suite: what every VmmDriver must do, asked through the port only
 * (core/ports/vmm-driver.ts), like containerd's and Hono's shared suites. QEMU runs it in
 * qemu.test.ts; Firecracker in firecracker.test.ts, with its own driver and disk provider, against
 * the real binary where it can run and against the stand-in process, minus what a process cannot
 * honour (`cannot`: each a skip reason).
 *
 * Specs come from the pure builder (vmm/spec.ts) and disks from the backend's disk provider, as in
 * the daemon. Four booted VMs in all: one walks boot -> HELLO -> exec -> files -> pause/resume -> adopt by a fresh driver
 * -> kill(), one stops gracefully, one is killed from outside, one is snapshotted (two clones
 * restored from it, then suspended and restored); failed starts and restores boot none.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createReadStream, existsSync } from "node:fs";
import { createHash } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { AgentClient } from "../../src/agent/client.js";
import { HyperfleetError } from "../../src/core/errors.js";
import type { DiskSpec, VmHandle, VmmDriver, VmmKind, VmSnapshot, VmSpec } from "../../src/core/ports/vmm-driver.js";
import type { GuestAssets } from "../../src/assets/index.js";
import { bootVm, connectAgent } from "../../src/vmm/boot.js";
import { hostTscKhz } from "../../src/vmm/host.js";
import { isAlive } from "../../src/vmm/process.js";
import { buildVmSpec, devicesFor, resolveBootPaths } from "../../src/vmm/spec.js";
import { Vm } from "../../src/vmm/vm.js";

export interface DriverSuiteOptions {
  /** Shown in the test names ("qemu", "firecracker"). */
  name: string;
  /** A fresh driver instance per call: adoption must work from one that never saw the VM. */
  newDriver: () => Promise<VmmDriver>;
  /** The VM's writable root disk made from the base (the backend's DiskProvider.rootDisk). */
  newDisk: (base: string, runDir: string) => Promise<DiskSpec>;
  /** A clone's writable root disk over a snapshot's frozen disk (the backend's DiskProvider.cloneDisk). */
  cloneDisk: (frozen: DiskSpec, runDir: string) => Promise<DiskSpec>;
  /** The guest assets the VMs boot. */
  assets: () => Promise<GuestAssets>;
  /** Why this backend cannot run here (e.g. "no firecracker binary"); the whole suite is skipped with it. */
  skip?: string | null;
  /** Which VMM: picks the agent channel and console (devicesFor). Default qemu. */
  kind?: VmmKind;
  /**
   * What a backend that is not a real VM cannot honour (the Firecracker stand-in: a process whose
   * "guest" is an hf-agent on the host's file system), each a skip reason; absent: honoured.
   */
  cannot?: {
    /** The hostname from the kernel command line (no kernel boots). */
    hostname?: string;
    /** Snapshots that carry the guest's memory and disk (the three snapshot cases). */
    snapshots?: string;
  };
  /** Directory in the guest the file cases write under; default /root (a stand-in's guest writes the host's). */
  guestDir?: string;
  /**
   * Firecracker writes guest memory to its own file for every snapshot (suspend, and a clone of a
   * clone, too); QEMU puts it in the stream there. Default false (QEMU).
   */
  memoryAlwaysInFile?: boolean;
  /** Called with the pid of every VMM the suite started, once it is gone (a stand-in's leftovers). */
  afterVmm?: (pid: number) => Promise<void>;
}

/** Generous: three TCG boots share two cores with other test processes. */
const BOOT_MS = 90_000;
/** requestStop's whole budget. A guest that ignores the power button costs half of it. */
const STOP_MS = 20_000;
const CASE_MS = 180_000;
/** How long a paused guest's agent is given to (wrongly) answer: a running one answers in milliseconds. */
const PAUSED_PING_MS = 1_500;

export function runDriverSuite(o: DriverSuiteOptions): void {
  const dirIn = o.guestDir ?? "/root";
  const snapshotSkip = o.cannot?.snapshots ?? false;
  describe(`VMM driver conformance: ${o.name}`, { skip: o.skip ?? false, timeout: 10 * CASE_MS }, () => {
    const runDirs: string[] = [];
    const handles: VmHandle[] = [];
    let assets: GuestAssets;

    before(async () => {
      assets = await o.assets();
    });

    after(async () => {
      for (const h of handles) {
        if (await isAlive(h.pid)) await h.kill().catch(() => undefined);
        await o.afterVmm?.(h.pid);
      }
      for (const d of runDirs) await rm(d, { recursive: true, force: true });
      assert.deepEqual(await processesUsing(runDirs), [], "no VMM outlives the suite");
    });

    async function newSpec(kernelPath?: string, disk?: (runDir: string) => Promise<DiskSpec>): Promise<VmSpec> {
      // Short: UNIX socket paths in the run dir must stay under 108 bytes.
      const runDir = await mkdtemp(join(tmpdir(), "hf-ds-"));
      runDirs.push(runDir);
      const devices = devicesFor(o.kind ?? "qemu");
      const boot = resolveBootPaths(kernelPath ? { kernelImagePath: kernelPath } : {}, assets, devices);
      return buildVmSpec({
        devices,
        id: `vm_conf${runDirs.length}${process.pid}`,
        vcpuCount: 1,
        memSizeMib: 256,
        boot,
        rootDisk: disk ? await disk(runDir) : await o.newDisk(boot.rootfsPath, runDir),
        runDir,
        tscKhz: hostTscKhz(),
      });
    }

    async function boot(driver: VmmDriver): Promise<{ spec: VmSpec; handle: VmHandle; agent: AgentClient }> {
      const spec = await newSpec();
      const handle = await driver.start(spec);
      handles.push(handle);
      const agent = await connectAgent(handle, BOOT_MS, undefined, { fresh: true });
      return { spec, handle, agent };
    }

    // The first VM goes through the cases below in order; each needs the one before.
    let vm: { spec: VmSpec; handle: VmHandle; agent: AgentClient } | null = null;
    let adopted: VmHandle | null = null;
    let adoptedAgent: AgentClient | null = null;
    const need = <T>(v: T | null, what: string): T => {
      if (v === null) throw new Error(`an earlier case did not leave ${what}`);
      return v;
    };

    test("start: the VMM runs and its agent answers HELLO", { timeout: CASE_MS }, async () => {
      const driver = await o.newDriver();
      vm = await boot(driver);
      const { handle, agent, spec } = vm;
      assert.equal(handle.id, spec.id);
      assert.equal(handle.runDir, spec.runDir);
      assert.ok(await isAlive(handle.pid), "the VMM process is alive");
      const st = await handle.status();
      assert.equal(st.state, "running");
      assert.equal(st.pid, handle.pid);
      assert.ok(agent.version >= 1, `HELLO gave protocol version ${agent.version}`);
      assert.match(agent.agentVersion, /^\d+\.\d+\.\d+/, "HELLO names the agent's version");
      assert.ok((await agent.ping()) >= 0, "PING round trip");
    });

    test("exec: argv, stdout, stderr and the exit code come back", { timeout: CASE_MS }, async (t) => {
      const { agent, spec } = need(vm, "a VM");
      const r = await agent.exec(["sh", "-c", 'echo "out $(hostname)"; echo err >&2; exit 3']);
      assert.equal(r.exitCode, 3);
      if (o.cannot?.hostname) t.diagnostic(`hostname not checked: ${o.cannot.hostname}`);
      else assert.equal(r.stdout.toString(), `out ${spec.id}\n`, "the guest's hostname is the VM id (from the spec's kernel args)");
      assert.match(r.stdout.toString(), /^out \S+\n$/);
      assert.equal(r.stderr.toString(), "err\n");
    });

    test("files: what is written is read back byte for byte", { timeout: CASE_MS }, async () => {
      const { agent } = need(vm, "a VM");
      // Larger than one DATA chunk, every byte value.
      const data = Buffer.alloc(300 * 1024, 0);
      for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 9)) & 0xff;
      assert.equal(await agent.writeFile(`${dirIn}/conformance/blob`, data, { mkdirs: true }), data.length);
      assert.deepEqual(await agent.readFile(`${dirIn}/conformance/blob`), data);
      assert.equal((await agent.stat(`${dirIn}/conformance/blob`)).size, data.length);
    });

    test("pause/resume: a paused guest does not answer, a resumed one does", { timeout: CASE_MS }, async () => {
      const { handle, agent } = need(vm, "a VM");
      await handle.pause();
      assert.equal((await handle.status()).state, "paused");
      await handle.pause(); // pausing a paused VM is not an error
      // Frozen vCPUs: the agent cannot answer, however long it is given within reason.
      const silent = Symbol("silent");
      const early = agent.ping();
      assert.equal(await Promise.race([early, sleep(PAUSED_PING_MS).then(() => silent)]), silent, "a paused guest answered a ping");
      await handle.resume();
      assert.equal((await handle.status()).state, "running");
      assert.ok((await early) >= 0, "the ping sent while paused is answered after resume");
      assert.ok((await agent.ping()) >= 0, "PING after resume");
    });

    test("adopt: a fresh driver re-attaches after a restart and the agent still works", { timeout: CASE_MS }, async () => {
      const { handle, agent, spec } = need(vm, "a VM");
      // The "restart": this host lets go of the VM (as a daemon that exits does), files stay.
      agent.close();
      handle.detach();
      const fresh = await o.newDriver();
      assert.equal(await fresh.adopt("vm_someone_else", spec.runDir), null, "a run dir of another id is not adopted");
      adopted = await fresh.adopt(spec.id, spec.runDir);
      assert.ok(adopted, "adopted");
      handles.push(adopted);
      assert.equal(adopted.pid, handle.pid, "the same VMM process");
      assert.equal((await adopted.status()).state, "running");
      adoptedAgent = await connectAgent(adopted, BOOT_MS);
      assert.equal((await adoptedAgent.readFile(`${dirIn}/conformance/blob`)).length, 300 * 1024, "the guest kept its state");
      const r = await adoptedAgent.exec(["echo", "still here"]);
      assert.equal(r.stdout.toString(), "still here\n");
    });

    test("kill: an adopted VMM is killed and its exit detected without being our child", { timeout: CASE_MS }, async (t) => {
      const h = need(adopted, "an adopted VM");
      await h.kill();
      const st = await h.exited();
      assert.equal(st.state, "exited");
      assert.ok(st.detectedBy, "the exit says how it was noticed");
      t.diagnostic(`detected by ${st.detectedBy}`);
      assert.equal((await h.status()).state, "exited");
      assert.equal(await isAlive(h.pid), false, "the process is gone");
      need(adoptedAgent, "an agent").close();
    });

    test("cleanup: runtime files go, the console log stays unless all", { timeout: CASE_MS }, async () => {
      const h = need(adopted, "an adopted VM");
      const before = await readdir(h.runDir);
      await h.cleanup();
      const left = await readdir(h.runDir);
      assert.ok(left.length < before.length, `cleanup removed something (${before.join(", ")} -> ${left.join(", ")})`);
      for (const f of left) assert.ok(!/\.(sock|pid)$|^meta\.json$/.test(f), `runtime file ${f} was left`);
      assert.ok(existsSync(h.consoleLogPath), "the console log is kept");
      await h.cleanup({ all: true });
      assert.equal(existsSync(h.runDir), false, "cleanup({ all }) removes the run dir");
    });

    test("requestStop: the guest is stopped gracefully and the process is gone", { timeout: CASE_MS }, async () => {
      const { handle, agent } = await boot(await o.newDriver());
      agent.close();
      await handle.requestStop(STOP_MS);
      const st = await handle.exited();
      assert.equal(st.state, "exited");
      assert.equal(st.signal ?? null, null, "it ended on its own, not by a signal");
      assert.equal(await isAlive(handle.pid), false);
      assert.equal((await handle.status()).state, "exited");
      await handle.cleanup({ all: true });
    });

    test("a VMM killed from outside is detected: exited() resolves, status says exited", { timeout: CASE_MS }, async () => {
      const { handle, agent } = await boot(await o.newDriver());
      process.kill(handle.pid, "SIGKILL");
      const st = await handle.exited();
      assert.equal(st.state, "exited");
      assert.ok(st.detectedBy, "the exit says how it was noticed");
      assert.equal((await handle.status()).state, "exited");
      await assert.rejects(agent.exec(["true"]), (e: unknown) => e instanceof HyperfleetError, "the agent of a dead VM fails with a coded error");
      await assert.rejects(handle.connectAgent(), (e: unknown) => e instanceof HyperfleetError);
      await handle.kill(); // killing what is already gone is not an error
      await handle.cleanup({ all: true });
    });

    test("a start that fails rejects with a coded error and leaves no process or runtime files", { timeout: CASE_MS }, async (t) => {
      const spec = await newSpec(join(tmpdir(), `hf-no-such-kernel-${process.pid}`));
      const driver = await o.newDriver();
      // The boot sequence every user of a driver goes through: a driver may notice the failure in
      // start() or only when the guest never answers; either way nothing may be left.
      const err = await bootVm(driver, spec, BOOT_MS).then(
        (b) => {
          handles.push(b.handle);
          return null;
        },
        (e: unknown) => e,
      );
      assert.ok(err instanceof HyperfleetError, `rejected with a HyperfleetError, got ${String(err)}`);
      assert.match(err.code, /^[A-Z_]+$/);
      t.diagnostic(`${err.code}: ${err.message.slice(0, 200)}`);
      assert.deepEqual(await processesUsing([spec.runDir]), [], "no VMM process is left");
      const left = existsSync(spec.runDir) ? await readdir(spec.runDir) : [];
      for (const f of left) assert.ok(!/\.(sock|pid)$|^meta\.json$/.test(f), `runtime file ${f} was left`);
    });

    // Snapshots: one booted source, cloned twice, then suspended and brought back. Each case needs the one before.
    let source: { spec: VmSpec; vm: Vm } | null = null;
    let cloneSnap: VmSnapshot | null = null;

    test("snapshot clone: two clones start where the source was, diverge from it and from each other; the source goes on", { timeout: CASE_MS , skip: snapshotSkip }, async (t) => {
      const driver = await o.newDriver();
      const spec = await newSpec();
      const src = await Vm.boot(driver, spec, BOOT_MS);
      handles.push(src.handle);
      source = { spec, vm: src };
      const agent = (v: Vm) => need(v.agent, `the agent of ${v.handle.id}`);
      const sh = async (v: Vm, script: string) => {
        const r = await agent(v).exec(["sh", "-c", script]);
        return { code: r.exitCode, out: r.stdout.toString() + r.stderr.toString() };
      };
      // Not synced: what the guest wrote must reach the clones whether it sits in its page cache or its disk queue.
      await agent(src).writeFile("/root/snap/before", Buffer.from("written before the snapshot\n"), { mkdirs: true });

      const dir = await mkdtemp(join(tmpdir(), "hf-dss-"));
      runDirs.push(dir);
      // A snapshot that cannot be written fails with a coded error and leaves the VM able to try again.
      await assert.rejects(src.handle.snapshot({ dir: join(dir, "missing"), purpose: "clone" }), (e: unknown) => e instanceof HyperfleetError && e.code === "SNAPSHOT_FAILED");
      assert.equal((await src.status()).state, "paused", "a failed snapshot leaves the guest paused");
      const t0 = performance.now();
      const snap = (cloneSnap = await src.handle.snapshot({ dir, purpose: "clone" }));
      t.diagnostic(`clone snapshot in ${Math.round(performance.now() - t0)} ms, ${snap.sizeBytes} bytes`);
      assert.equal(snap.purpose, "clone");
      assert.equal((await src.status()).state, "paused", "the source is left paused");
      for (const f of [snap.stateFile, need(snap.memoryFile, "a memory file"), need(snap.disk, "a frozen disk").path]) {
        assert.ok(f.startsWith(`${dir}/`) && existsSync(f), `${f} is in the snapshot dir`);
      }
      assert.deepEqual((await readdir(dir)).filter((f) => f.endsWith(".tmp")), [], "no temporary file is left");
      assert.ok(snap.sizeBytes > 0 && snap.sizeBytes < 2 * 256 * 1024 * 1024, `size ${snap.sizeBytes}`);
      // Its content, not its block count: ext4 may still allocate a freshly copied file's blocks.
      const frozen = { stat: await stat(snap.memoryFile!), sha: await sha256Of(snap.memoryFile!) };
      // Once more without resuming in between (QEMU refuses a migration right after one; the driver copes).
      const second = await mkdtemp(join(tmpdir(), "hf-dss-"));
      runDirs.push(second);
      assert.equal((await src.handle.snapshot({ dir: second, purpose: "clone" })).purpose, "clone");
      await rm(second, { recursive: true });

      // The source goes on, and its disk takes writes again (the migration had let go of it).
      await src.resume(BOOT_MS);
      assert.equal((await src.status()).state, "running");
      assert.deepEqual(await sh(src, "echo source > /root/snap/source-after && sync && cat /root/snap/source-after"), { code: 0, out: "source\n" });

      const clones: Vm[] = [];
      for (let i = 0; i < 2; i++) {
        const cspec = await newSpec(undefined, (runDir) => o.cloneDisk(snap.disk!, runDir));
        const t1 = performance.now();
        const c = await Vm.restore(driver, cspec, snap, BOOT_MS);
        handles.push(c.handle);
        t.diagnostic(`clone ${i + 1}: restore -> agent in ${Math.round(performance.now() - t1)} ms`);
        clones.push(c);
        assert.equal((await c.status()).state, "running");
      }
      const [c1, c2] = clones as [Vm, Vm];
      assert.deepEqual(await sh(c1, "cat /root/snap/before"), { code: 0, out: "written before the snapshot\n" });
      assert.deepEqual(await sh(c1, "echo one > /root/snap/clone1 && sync && cat /root/snap/clone1"), { code: 0, out: "one\n" });
      // Read from the clone's disk, not its page cache: the frozen disk holds what the source wrote.
      assert.deepEqual(await sh(c2, "sync && echo 3 > /proc/sys/vm/drop_caches && cat /root/snap/before"), { code: 0, out: "written before the snapshot\n" });
      for (const v of [c2, src]) assert.equal((await sh(v, "test -e /root/snap/clone1; echo $?")).out, "1\n", `${v.handle.id} does not see clone 1's file`);
      assert.equal((await sh(c1, "test -e /root/snap/source-after; echo $?")).out, "1\n", "a clone does not see what the source wrote after the snapshot");

      const after = await stat(snap.memoryFile!);
      assert.deepEqual([after.mtimeMs, after.size], [frozen.stat.mtimeMs, frozen.stat.size], "the clones' writes left the memory file as it was");
      assert.equal(await sha256Of(snap.memoryFile!), frozen.sha, "and its bytes");
      // A clone's RAM is a private mapping of that file, not its own memory: a snapshot of a clone
      // carries its RAM in the stream, and a clone of the clone loads it whole.
      const again = await mkdtemp(join(tmpdir(), "hf-dss-"));
      runDirs.push(again);
      const fromClone = await c1.handle.snapshot({ dir: again, purpose: "clone" });
      if (o.memoryAlwaysInFile) assert.ok(fromClone.memoryFile?.startsWith(`${again}/`), "the clone's own RAM, in its own file");
      else assert.equal(fromClone.memoryFile, null, "the RAM is in the stream");
      await c1.resume(BOOT_MS);
      const gspec = await newSpec(undefined, (runDir) => o.cloneDisk(need(fromClone.disk, "a frozen disk"), runDir));
      const grandchild = await Vm.restore(driver, gspec, fromClone, BOOT_MS);
      handles.push(grandchild.handle);
      clones.push(grandchild);
      assert.deepEqual(await sh(grandchild, "cat /root/snap/clone1 /root/snap/before"), { code: 0, out: "one\nwritten before the snapshot\n" }, "a clone of clone 1 has its files");
      assert.deepEqual(await sh(c1, "echo still > /root/snap/c1-after && cat /root/snap/c1-after"), { code: 0, out: "still\n" }, "clone 1 goes on");
      for (const c of clones) await c.kill();
      assert.deepEqual(await processesUsing(clones.map((c) => c.handle.runDir)), [], "no clone VMM is left");
    });

    test("restore of a missing or damaged snapshot fails with a coded error and leaves nothing running", { timeout: CASE_MS , skip: snapshotSkip }, async () => {
      const snap = need(cloneSnap, "a clone snapshot");
      const driver = await o.newDriver();
      const missing = await newSpec(undefined, (runDir) => o.cloneDisk(snap.disk!, runDir));
      await assert.rejects(driver.restore(missing, { ...snap, stateFile: join(snap.dir, "no-such-state") }), (e: unknown) => e instanceof HyperfleetError && e.code === "SNAPSHOT_NOT_FOUND");
      const damaged = await mkdtemp(join(tmpdir(), "hf-dss-"));
      runDirs.push(damaged);
      await writeFile(join(damaged, "state"), (await readFile(snap.stateFile)).subarray(0, 4096));
      const spec = await newSpec(undefined, (runDir) => o.cloneDisk(snap.disk!, runDir));
      const err = await driver.restore(spec, { ...snap, stateFile: join(damaged, "state") }).then(
        (h) => {
          handles.push(h);
          return null;
        },
        (e: unknown) => e,
      );
      assert.ok(err instanceof HyperfleetError && err.code === "SNAPSHOT_FAILED", `rejected with SNAPSHOT_FAILED, got ${String(err)}`);
      assert.deepEqual(await processesUsing([spec.runDir]), [], "no VMM process is left");
      for (const f of await readdir(spec.runDir)) assert.ok(!/\.(sock|pid)$|^meta\.json$/.test(f), `runtime file ${f} was left`);
    });

    test("snapshot suspend: the same VM comes back on its disk with its processes; a fresh driver adopts it", { timeout: CASE_MS , skip: snapshotSkip }, async () => {
      const { spec, vm } = need(source, "the snapshot source");
      const { pid } = await need(vm.agent, "an agent").execDetached(["sleep", "1000"], { logPath: "/root/snap/sleep.log" });
      assert.ok(pid > 1, `detached sleep has pid ${pid}`);
      const dir = await mkdtemp(join(tmpdir(), "hf-dss-"));
      runDirs.push(dir);
      const snap = await vm.handle.snapshot({ dir, purpose: "suspend" });
      assert.deepEqual([snap.purpose, snap.disk], ["suspend", null]);
      if (o.memoryAlwaysInFile) assert.ok(snap.memoryFile?.startsWith(`${dir}/`) && existsSync(snap.memoryFile), "the RAM in its own file");
      else assert.equal(snap.memoryFile, null, "the RAM is in the stream");
      assert.ok(existsSync(snap.stateFile) && snap.sizeBytes > 0);
      await vm.kill();
      assert.equal(await isAlive(vm.pid), false);

      const driver = await o.newDriver();
      const back = await Vm.restore(driver, spec, snap, BOOT_MS);
      handles.push(back.handle);
      assert.notEqual(back.pid, vm.pid, "a new VMM process");
      const agent = need(back.agent, "the restored VM's agent");
      const r = await agent.exec(["sh", "-c", `kill -0 ${pid} && tr '\\0' ' ' < /proc/${pid}/cmdline`]);
      assert.deepEqual([r.exitCode, r.stdout.toString()], [0, "sleep 1000 "], "the process started before the suspend is still there");
      assert.equal((await agent.readFile("/root/snap/source-after")).toString(), "source\n", "on its own disk");

      // Adoption after a daemon restart works for a restored VM as for a booted one.
      back.detach();
      const adopted = await Vm.adopt(await o.newDriver(), spec.id, spec.runDir);
      assert.ok(adopted, "adopted");
      handles.push(adopted.handle);
      assert.equal(adopted.pid, back.pid);
      assert.equal((await need(adopted.agent, "the adopted VM's agent").exec(["echo", "adopted"])).stdout.toString(), "adopted\n");
      await adopted.kill();
      assert.deepEqual(await processesUsing([spec.runDir]), []);
    });
  });
}

/** PIDs of processes whose command line names one of `dirs`: whatever VMM a case left running. */
async function processesUsing(dirs: string[]): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmd = (await readFile(`/proc/${entry}/cmdline`, "utf8")).split("\0");
      if (cmd.some((a) => dirs.some((d) => a.includes(`${d}/`)))) found.push(Number(entry));
    } catch {
      /* raced with exit */
    }
  }
  return found;
}

async function sha256Of(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest("hex");
}
