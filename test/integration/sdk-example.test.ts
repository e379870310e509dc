/**
 * The SDK example of the brief (examples/sdk-example.ts) runs as written under QEMU: its OCI image
 * is pulled from a real registry on loopback (Debian's docker-registry) by the daemon's image code,
 * and its `socketPath` and `vsock.uds_path` are where the VM's sockets really are. Then the same
 * options in-process: adoption and the /proc scan find a VM whose sockets live outside its run dir.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, lstatSync, readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm, symlink, chmod, copyFile, mkdir, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Machine } from "../../src/embed/machine.js";
import { ImageService } from "../../src/images/service.js";
import { findVmmsIn, runDirOfArgv } from "../../src/vmm/qemu/scan.js";
import { isAlive } from "../../src/vmm/process.js";
import { hostTscKhz } from "../../src/vmm/host.js";
import { push, sh } from "../images/fixtures.js";
import { AGENT } from "../images/harness.js";
import { startRegistry, type TestRegistry } from "../images/registry.js";
import { dataDir, leftoverQemu, tempRunDir } from "./helpers.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
const EXAMPLE_ARGS = "console=ttyS0 reboot=k panic=1 pci=off";
const vmlinux = (JSON.parse(readFileSync(join(dataDir(), "assets.json"), "utf8")) as { vmlinux: string }).vmlinux;

let registry: TestRegistry;
let work: string;
let imageRef: string;

/** A one-layer busybox image with `uname` on PATH (the example runs `uname -a`). */
async function buildUnameImage(dir: string): Promise<string> {
  const layout = join(dir, "oci");
  await sh("umoci", ["init", "--layout", layout]);
  await sh("umoci", ["new", "--image", `${layout}:v1`]);
  const bundle = join(dir, "bundle");
  await sh("umoci", ["unpack", "--image", `${layout}:v1`, bundle]);
  const bin = join(bundle, "rootfs", "bin");
  await mkdir(bin, { recursive: true });
  await copyFile("/bin/busybox", join(bin, "busybox"));
  await chmod(join(bin, "busybox"), 0o755);
  for (const applet of ["sh", "uname", "cat", "ls"]) await symlink("busybox", join(bin, applet));
  await sh("umoci", ["repack", "--image", `${layout}:v1`, bundle]);
  await sh("umoci", ["config", "--image", `${layout}:v1`, "--config.env", "PATH=/bin"]);
  return layout;
}

/** Pids of QEMUs whose command line names a path under `dir` (the example's run dir is elsewhere). */
function qemusUsing(dir: string): { pid: number; argv: string[] }[] {
  const found: { pid: number; argv: string[] }[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const argv = readFileSync(`/proc/${e}/cmdline`, "utf8").split("\0");
      if (argv[0]?.includes("qemu-system") && argv.some((a) => a.includes(`${dir}/`))) found.push({ pid: Number(e), argv });
    } catch {
      /* exited meanwhile */
    }
  }
  return found;
}

const isSocket = (p: string): boolean => {
  try {
    return lstatSync(p).isSocket();
  } catch {
    return false;
  }
};

before(async () => {
  registry = await startRegistry();
  work = await mkdtemp(join(tmpdir(), "hf-sdkex-"));
  const layout = await buildUnameImage(work);
  imageRef = `${registry.host}/sdk-example:v1`;
  await push(layout, "v1", imageRef);
});

after(async () => {
  // The example pulled into the library cache of the default data dir: take its image out again.
  const images = await ImageService.open({ cacheDir: join(dataDir(), "library-images"), maxCacheSize: 10 * 2 ** 30, agentBinary: AGENT });
  await images.remove(imageRef).catch(() => undefined);
  await images.close();
  await registry.stop();
  await rm(work, { recursive: true, force: true });
});

test("the brief's SDK example runs as written: image pulled, uname -a from the guest, sockets where it says", async () => {
  const dir = await mkdtemp(join(tmpdir(), "hf-sdk-"));
  const control = join(dir, "firecracker.sock");
  const uds = join(dir, "hyperfleet.vsock");
  // Watched while the example runs: the sockets exist, and the VM's QEMU names them.
  const seen = { control: false, uds: false, qmpOnCommandLine: false, agentOnCommandLine: false, pid: 0 };
  let runDir: string | null = null;
  let destroyed: boolean | undefined;
  let running = true;
  const watch = (async () => {
    while (running) {
      seen.control ||= isSocket(control);
      seen.uds ||= isSocket(uds);
      for (const q of qemusUsing(dir)) {
        seen.pid = q.pid;
        runDir = runDirOfArgv(q.argv);
        seen.qmpOnCommandLine ||= q.argv.some((a) => a.startsWith("socket,id=qmp,") && a.includes(`path=${control},`));
        seen.agentOnCommandLine ||= q.argv.some((a) => a.startsWith("socket,id=agent,") && a.includes(`path=${uds},`));
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  try {
    const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", "examples/sdk-example.ts"], {
      cwd: root,
      timeout: 300_000,
      env: { ...process.env, EXAMPLE_IMAGE: imageRef, EXAMPLE_DIR: dir, EXAMPLE_KERNEL: vmlinux, HYPERFLEET_INSECURE_REGISTRIES: registry.host },
    });
    assert.match(stdout, /^Linux \S+ 6\.\d+\.\d+-\d+-cloud-amd64 .* x86_64 GNU\/Linux\n/, "uname -a of the guest kernel");
  } finally {
    running = false;
    await watch;
    if (seen.pid && (await isAlive(seen.pid))) process.kill(seen.pid, "SIGKILL");
    await rm(dir, { recursive: true, force: true });
    // The example destroys its VM; if it failed before that, its run dir (under the data dir) goes here.
    destroyed = runDir === null || !existsSync(runDir);
    if (runDir !== null) await rm(runDir, { recursive: true, force: true });
  }
  assert.ok(destroyed, "the example's destroy removed its run dir");
  assert.deepEqual(seen, { control: true, uds: true, qmpOnCommandLine: true, agentOnCommandLine: true, pid: seen.pid });
  assert.ok(seen.pid > 0);
  assert.deepEqual(qemusUsing(dir), [], "the example's shutdown ended its VM");
});

test("socketPath and vsock.uds_path under QEMU: adopted and found in /proc with its sockets outside the run dir", async () => {
  const dir = await mkdtemp(join(tmpdir(), "hf-sdk-"));
  const runDir = await tempRunDir();
  const opts = {
    socketPath: join(dir, "control.sock"),
    kernelImagePath: vmlinux,
    kernelArgs: EXAMPLE_ARGS,
    vcpuCount: 1,
    memSizeMib: 256,
    vsock: { guest_cid: 3, uds_path: join(dir, "agent.vsock") },
    dataDir: dataDir(),
    runDir,
  };
  const m = new Machine(opts);
  let adopted: Machine | null = null;
  try {
    // What a VM that died left at the path: a socket nobody listens on. The start replaces it.
    await sh("python3", ["-c", "import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])", opts.socketPath]);
    assert.ok(isSocket(opts.socketPath));
    (await m.start()).unwrap();
    assert.ok(isSocket(opts.socketPath) && isSocket(opts.vsock.uds_path), "both sockets are where the options say");
    assert.deepEqual(readdirSync(runDir).filter((f) => f.endsWith(".sock")), [], "none in the run dir");
    const cmdline = readFileSync(`/proc/${m.pid}/cmdline`, "utf8").split("\0");
    const append = cmdline[cmdline.indexOf("-append") + 1];
    assert.equal(append, `${EXAMPLE_ARGS} root=/dev/vda rw tsc_early_khz=${Math.round(hostTscKhz()!)} console=hvc0`, "root, the TSC rate and our console added to the example's arguments");
    // The last console= names /dev/console: hvc0 ('C', the console device; console.log), not the
    // ttyS0 our machine lacks. (What the kernel printed before hvc0 came up went to ttyS0 only, so
    // console.log's content depends on timing: not asserted.)
    const consoles = (await m.exec(["cat", "/proc/consoles"])).unwrap().stdout;
    assert.match(consoles, /^hvc0\s+\S+\s+\([^)]*C[^)]*\)/m, consoles);
    assert.deepEqual((await findVmmsIn(runDir)).map((v) => v.pid), [m.pid], "the /proc scan finds it by its run dir");

    const pid = m.pid;
    m.detach();
    adopted = await Machine.adopt({ ...opts, id: m.id });
    assert.ok(adopted, "adopted");
    assert.equal(adopted.pid, pid);
    assert.equal((await adopted.exec(["echo", "adopted"])).unwrap().stdout, "adopted\n");
    (await adopted.shutdown()).unwrap();
    assert.equal(await isAlive(pid!), false, "a graceful shutdown ended the VM");
  } finally {
    await (adopted ?? m).destroy();
    await rm(dir, { recursive: true, force: true });
  }
  assert.deepEqual(await leftoverQemu(), []);
});

test("bad combinations of the example's options are refused before anything runs", async () => {
  const base = { vcpuCount: 1, memSizeMib: 256, dataDir: dataDir(), runDir: await tempRunDir() };
  const cases: [object, string][] = [
    [{ imageRef: "x:1", rootfsPath: "/r.ext4" }, "imageRef"],
    [{ imageSizeMib: 512 }, "imageSizeMib"],
    [{ imageRef: "x:1", imageSizeMib: 0 }, "imageSizeMib"],
    [{ vsock: { guest_cid: 2, uds_path: "/tmp/x.vsock" } }, "vsock.guest_cid"],
  ];
  for (const [o, field] of cases) {
    const r = await new Machine({ ...base, ...o }).start();
    assert.ok(!r.ok, JSON.stringify(o));
    assert.equal(r.error.code, "INVALID_ARGUMENT");
    assert.equal((r.error.details as { field: string }).field, field);
  }
});

test("a socketPath that is another file, or a socket someone listens on, is refused, never removed", async () => {
  const dir = await mkdtemp(join(tmpdir(), "hf-sdk-"));
  const server = createServer();
  const machines: Machine[] = [];
  try {
    const file = join(dir, "notes.txt");
    await writeFile(file, "mine");
    const live = join(dir, "live.sock");
    await new Promise<void>((r) => server.listen(live, r));
    for (const [socketPath, why] of [[file, /is not a socket/], [live, /in use by a running process/]] as const) {
      const m = new Machine({ vcpuCount: 1, memSizeMib: 256, dataDir: dataDir(), runDir: await tempRunDir(), socketPath });
      machines.push(m);
      const r = await m.start();
      assert.ok(!r.ok, `${socketPath} was taken over`);
      assert.equal(r.error.code, "INVALID_ARGUMENT");
      assert.match(r.error.message, why);
    }
    assert.equal(readFileSync(file, "utf8"), "mine");
    assert.ok(isSocket(live));
  } finally {
    for (const m of machines) await m.destroy();
    await new Promise((r) => server.close(r));
    await rm(dir, { recursive: true, force: true });
  }
  assert.deepEqual(await leftoverQemu(), []);
});
