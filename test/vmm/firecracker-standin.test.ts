/**
 * The Firecracker stand-in (test/vmm/firecracker-standin/) as the driver meets it: a real process
 * spawned through its executable, its API spoken over the Unix socket, and a real hf-agent behind
 * its hybrid vsock. Each rule asserted here is one real Firecracker enforces (see faults.ts for
 * the source of each text).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { AgentClient } from "../../src/agent/client.js";
import { AGENT_VSOCK_PORT, connectHybridVsock } from "../../src/vmm/firecracker/vsock.js";
import { buildAgent, processAlive } from "../guest/harness.js";
import * as F from "./firecracker-standin/faults.js";
import { api, Standin, STANDIN_BIN } from "./firecracker-standin/harness.js";
import { guestDirFor } from "./firecracker-standin/vm.js";

const dirs: string[] = [];
const standins: Standin[] = [];
const clients: AgentClient[] = [];

before(() => buildAgent());
after(async () => {
  for (const c of clients) c.close();
  await Promise.all(standins.map((s) => s.stop()));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface Host {
  dir: string;
  kernel: string;
  root: string;
  log: string;
  metrics: string;
  vsock: string;
}

function host(): Host {
  const dir = mkdtempSync(join(tmpdir(), "hf-fcs-"));
  dirs.push(dir);
  const h = { dir, kernel: join(dir, "vmlinux"), root: join(dir, "root.img"), log: join(dir, "fc.log"), metrics: join(dir, "fc.metrics"), vsock: join(dir, "v.sock") };
  writeFileSync(h.kernel, "not a kernel: the stand-in only opens it");
  writeFileSync(h.root, Buffer.alloc(64 * 1024));
  writeFileSync(h.log, "");
  writeFileSync(h.metrics, "");
  return h;
}

async function standin(h: Host, extra: string[] = []): Promise<Standin> {
  const s = await Standin.start(h.dir, extra);
  standins.push(s);
  return s;
}

async function expect204(s: Standin, method: string, path: string, body?: unknown): Promise<void> {
  const r = await s.api(method, path, body);
  assert.equal(r.status, 204, `${method} ${path}: ${JSON.stringify(r.body)}`);
  assert.equal(r.body, undefined);
}

async function expectFault(s: Standin, method: string, path: string, body: unknown, message: string | RegExp): Promise<void> {
  const r = await s.api(method, path, body);
  assert.equal(r.status, 400, `${method} ${path} answered ${r.status}`);
  const fault = (r.body as { fault_message?: unknown }).fault_message;
  assert.equal(Object.keys(r.body as object).length, 1, JSON.stringify(r.body));
  if (typeof message === "string") assert.equal(fault, message);
  else assert.match(String(fault), message);
}

/** The driver's configure sequence up to (not including) InstanceStart. */
async function configure(s: Standin, h: Host, opts: { vcpus?: number; memMib?: number } = {}): Promise<void> {
  await expect204(s, "PUT", "/logger", { log_path: h.log, level: "Warning", show_level: true, show_log_origin: false });
  await expect204(s, "PUT", "/metrics", { metrics_path: h.metrics });
  await expect204(s, "PUT", "/serial", { serial_out_path: join(h.dir, "console.log") });
  await expect204(s, "PUT", "/boot-source", { kernel_image_path: h.kernel, boot_args: "console=ttyS0 reboot=k panic=1" });
  await expect204(s, "PUT", "/drives/rootfs", { drive_id: "rootfs", path_on_host: h.root, is_root_device: true, is_read_only: false });
  await expect204(s, "PUT", "/machine-config", { vcpu_count: opts.vcpus ?? 1, mem_size_mib: opts.memMib ?? 128, smt: false });
  await expect204(s, "PUT", "/vsock", { guest_cid: 3, uds_path: h.vsock });
  await expect204(s, "PUT", "/entropy", {});
}

async function boot(h: Host): Promise<Standin> {
  const s = await standin(h);
  await configure(s, h);
  await expect204(s, "PUT", "/actions", { action_type: "InstanceStart" });
  return s;
}

async function agentOver(udsPath: string): Promise<AgentClient> {
  const c = await AgentClient.connect(await connectHybridVsock(udsPath, AGENT_VSOCK_PORT, { timeoutMs: 15_000 }), { timeoutMs: 15_000 });
  clients.push(c);
  return c;
}

/** Resolves to "pending" if p has not settled within ms. */
async function settledWithin<T>(p: Promise<T>, ms: number): Promise<T | "pending"> {
  let t: NodeJS.Timeout | undefined;
  const r = await Promise.race([p, new Promise<"pending">((res) => (t = setTimeout(() => res("pending"), ms)))]);
  clearTimeout(t);
  return r;
}

describe("command line", () => {
  test("--version prints Firecracker's version line", () => {
    const r = spawnSync(STANDIN_BIN, ["--version"], { encoding: "utf8" });
    assert.equal(r.status, 0);
    assert.equal(r.stdout, "Firecracker v1.16.1\n");
  });

  test("an unknown flag is Firecracker's argument parsing error, exit code 153", () => {
    const r = spawnSync(STANDIN_BIN, ["--api-sock", "/nonexistent/x.sock", "--vcpus", "2"], { encoding: "utf8" });
    assert.equal(r.status, 153);
    assert.match(r.stderr, /^Arguments parsing error: Found argument 'vcpus' which wasn't expected, or isn't valid in this context\./);
  });

  test("the flags the driver passes are accepted (--id, --log-path, --level, --no-seccomp, --boot-timer)", async () => {
    const h = host();
    const s = await standin(h, ["--id", "vm-1a", "--log-path", h.log, "--level", "Warning", "--no-seccomp", "--boot-timer"]);
    const r = await s.api("GET", "/");
    assert.deepEqual(r.body, { id: "vm-1a", state: "Not started", vmm_version: "1.16.1", app_name: "Firecracker" });
  });

  test("a stale API socket path is refused as Firecracker refuses it (bind: address in use), and left in place", async () => {
    const h = host();
    const stale = join(h.dir, "api.sock");
    writeFileSync(stale, "");
    const r = spawnSync(STANDIN_BIN, ["--api-sock", stale], { encoding: "utf8", timeout: 20_000 });
    assert.equal(r.status, 1);
    assert.equal(r.stderr, `Failed to open the API socket at: ${stale}. Check that it is not already used.\n`);
    assert.ok(existsSync(stale));
    // Once the driver removes it, the same path works.
    rmSync(stale);
    const s = await standin(h);
    assert.equal((await s.api("GET", "/version")).status, 200);
  });
});

describe("requests are checked against the API definition", () => {
  test("invalid bodies, paths, ids and methods get 400 with Firecracker's fault_message", async () => {
    const h = host();
    const s = await standin(h);
    const de = (m: RegExp) => new RegExp(`^An error occurred when deserializing the json body of a request: ${m.source}\\.$`);
    await expectFault(s, "PUT", "/machine-config", { vcpu_count: 2, mem_size_mib: 256, vcpus: 2 }, de(/.*additional properties \(vcpus\)/));
    await expectFault(s, "PUT", "/machine-config", { vcpu_count: "2", mem_size_mib: 256 }, de(/.*\/vcpu_count must be integer/));
    await expectFault(s, "PUT", "/machine-config", { vcpu_count: 2 }, de(/.*must have required property 'mem_size_mib'/));
    await expectFault(s, "PUT", "/actions", { action_type: "Reboot" }, de(/.*must be equal to one of the allowed values/));
    await expectFault(s, "PUT", "/logger", { log_path: h.log, level: "Loud" }, de(/.*\/level must be equal to one of the allowed values/));
    await expectFault(s, "PUT", "/boot-sauce", { kernel_image_path: h.kernel }, F.invalidPathMethod("PUT", "boot-sauce"));
    await expectFault(s, "DELETE", "/drives/rootfs", undefined, F.invalidPathMethod("DELETE", "drives"));
    await expectFault(s, "PUT", "/drives/root-fs", { drive_id: "root-fs", path_on_host: h.root, is_root_device: true, is_read_only: false }, F.INVALID_ID);
    await expectFault(s, "PUT", "/drives/rootfs", { drive_id: "disk1", path_on_host: h.root, is_root_device: true, is_read_only: false }, F.ID_MISMATCH);
    await expectFault(s, "PUT", "/network-interfaces/eth0", { iface_id: "eth1", host_dev_name: "tap0" }, F.ID_MISMATCH);
    await expectFault(s, "PUT", "/snapshot/load", { snapshot_path: "/x" }, F.deserialize(F.MEM_MISSING));
    await expectFault(s, "PUT", "/snapshot/load", { snapshot_path: "/x", mem_file_path: "/m", mem_backend: { backend_type: "File", backend_path: "/m" } }, F.deserialize(F.MEM_TOO_MANY));
    const empty = await api(s.sock, "PUT", "/boot-source", undefined, "");
    assert.deepEqual([empty.status, empty.body], [400, { fault_message: F.emptyRequest("PUT") }]);
    const withBody = await api(s.sock, "GET", "/machine-config", undefined, "{}");
    assert.deepEqual([withBody.status, withBody.body], [400, { fault_message: F.GET_WITH_BODY }]);
    const notJson = await api(s.sock, "PUT", "/boot-source", undefined, "{nope");
    assert.equal(notJson.status, 400);
    assert.match(String((notJson.body as { fault_message: string }).fault_message), /^An error occurred when deserializing the json body of a request: /);
    // Nothing of the above changed the VM.
    assert.deepEqual((await s.api("GET", "/machine-config")).body, { vcpu_count: 1, mem_size_mib: 128, smt: false, track_dirty_pages: false, huge_pages: "None" });
  });

  test("the request log records every request, its body and the answer, in order", async () => {
    const h = host();
    const s = await standin(h);
    await expect204(s, "PUT", "/boot-source", { kernel_image_path: h.kernel });
    await expectFault(s, "PATCH", "/vm", { state: "Paused" }, F.NOT_SUPPORTED_PRE_BOOT);
    assert.equal((await s.api("GET", "/")).status, 200);
    assert.deepEqual(s.requests(), [
      { method: "PUT", path: "/boot-source", body: { kernel_image_path: h.kernel }, status: 204 },
      { method: "PATCH", path: "/vm", body: { state: "Paused" }, status: 400, fault_message: F.NOT_SUPPORTED_PRE_BOOT },
      { method: "GET", path: "/", status: 200 },
    ]);
  });

  test("a body over Firecracker's 51200-byte payload limit is refused without being kept", async () => {
    const h = host();
    const s = await standin(h);
    const r = await s.api("PUT", "/mmds", { pad: "x".repeat(60_000) });
    assert.equal(r.status, 400);
    assert.match((r.body as { fault_message: string }).fault_message, /^Request payload with size \d+ is larger than the limit of 51200 allowed by server\./);
  });
});

describe("pre-boot and post-boot rules", () => {
  test("before InstanceStart: runtime operations are refused, and host files are opened, never created", async () => {
    const h = host();
    const s = await standin(h);
    await expectFault(s, "PATCH", "/vm", { state: "Resumed" }, F.NOT_SUPPORTED_PRE_BOOT);
    await expectFault(s, "PUT", "/actions", { action_type: "SendCtrlAltDel" }, F.NOT_SUPPORTED_PRE_BOOT);
    await expectFault(s, "PUT", "/snapshot/create", { snapshot_type: "Full", snapshot_path: join(h.dir, "s"), mem_file_path: join(h.dir, "m") }, F.NOT_SUPPORTED_PRE_BOOT);
    await expectFault(s, "PATCH", "/drives/rootfs", { drive_id: "rootfs", path_on_host: h.root }, F.NOT_SUPPORTED_PRE_BOOT);
    await expectFault(s, "PUT", "/actions", { action_type: "InstanceStart" }, F.MISSING_KERNEL);
    await expectFault(s, "PUT", "/boot-source", { kernel_image_path: join(h.dir, "nope") }, "Boot source error: The kernel file cannot be opened: No such file or directory (os error 2)");
    await expectFault(s, "PUT", "/boot-source", { kernel_image_path: h.kernel, initrd_path: join(h.dir, "nope") }, /^Boot source error: The initrd file cannot be opened due to invalid path or invalid permissions\. No such file or directory \(os error 2\)$/);
    await expectFault(s, "PUT", "/drives/rootfs", { drive_id: "rootfs", path_on_host: join(h.dir, "nope.img"), is_root_device: true, is_read_only: false }, /^Drive config error: .*No such file or directory \(os error 2\)/);
    await expectFault(s, "PUT", "/logger", { log_path: join(h.dir, "nope.log") }, /^Logger error: .*No such file or directory \(os error 2\)$/);
    await expectFault(s, "PUT", "/metrics", { metrics_path: join(h.dir, "nope.metrics") }, /^Metrics error: .*No such file or directory \(os error 2\)$/);
    assert.ok(!existsSync(join(h.dir, "nope.log")) && !existsSync(join(h.dir, "nope.metrics")), "Firecracker never creates the logger/metrics files");
    // 1..32 is in the API definition, so the body check answers first; SMT's "1 or even" is not.
    for (const vcpu_count of [0, 33]) await expectFault(s, "PUT", "/machine-config", { vcpu_count, mem_size_mib: 128 }, /deserializing the json body of a request: .*\/vcpu_count must be [<>]=/);
    await expectFault(s, "PUT", "/machine-config", { vcpu_count: 3, mem_size_mib: 128, smt: true }, F.INVALID_VCPUS);
    await expectFault(s, "PUT", "/machine-config", { vcpu_count: 2, mem_size_mib: 0 }, F.INVALID_MEM);
    await expect204(s, "PUT", "/machine-config", { vcpu_count: 4, mem_size_mib: 256, smt: true });
    await expect204(s, "PUT", "/drives/rootfs", { drive_id: "rootfs", path_on_host: h.root, is_root_device: true, is_read_only: false });
    await expectFault(s, "PUT", "/drives/other", { drive_id: "other", path_on_host: h.root, is_root_device: true, is_read_only: true }, F.ROOT_DRIVE_EXISTS);
    await expect204(s, "PUT", "/metrics", { metrics_path: h.metrics });
    await expectFault(s, "PUT", "/metrics", { metrics_path: h.metrics }, F.METRICS_REINIT);
    assert.equal(((await s.api("GET", "/")).body as { state: string }).state, "Not started");
  });

  test("after InstanceStart: configuration is refused, runtime operations work, GETs show the VM", async () => {
    const h = host();
    const s = await boot(h);
    assert.equal(((await s.api("GET", "/")).body as { state: string }).state, "Running");
    const postBoot: Array<[string, string, unknown]> = [
      ["PUT", "/boot-source", { kernel_image_path: h.kernel }],
      ["PUT", "/drives/disk1", { drive_id: "disk1", path_on_host: h.root, is_root_device: false, is_read_only: true }],
      ["PUT", "/machine-config", { vcpu_count: 2, mem_size_mib: 256 }],
      ["PATCH", "/machine-config", { vcpu_count: 2, mem_size_mib: 256 }],
      ["PUT", "/network-interfaces/eth0", { iface_id: "eth0", host_dev_name: "tap0" }],
      ["PUT", "/vsock", { guest_cid: 4, uds_path: join(h.dir, "v2.sock") }],
      ["PUT", "/entropy", {}],
      ["PUT", "/logger", { log_path: h.log }],
      ["PUT", "/metrics", { metrics_path: h.metrics }],
      ["PUT", "/serial", { serial_out_path: join(h.dir, "c2.log") }],
      ["PUT", "/snapshot/load", { snapshot_path: "/x", mem_backend: { backend_type: "File", backend_path: "/m" } }],
      ["PUT", "/actions", { action_type: "InstanceStart" }],
    ];
    for (const [m, p, b] of postBoot) await expectFault(s, m, p, b, F.NOT_SUPPORTED_POST_BOOT);
    assert.deepEqual((await s.api("GET", "/machine-config")).body, { vcpu_count: 1, mem_size_mib: 128, smt: false, track_dirty_pages: false, huge_pages: "None" });
    const cfg = (await s.api("GET", "/vm/config")).body as Record<string, unknown>;
    assert.deepEqual(cfg["vsock"], { guest_cid: 3, uds_path: h.vsock });
    assert.equal((cfg["drives"] as unknown[]).length, 1);
    assert.deepEqual((await s.api("GET", "/version")).body, { firecracker_version: "1.16.1" });
    await expect204(s, "PUT", "/actions", { action_type: "FlushMetrics" });
    await expect204(s, "PATCH", "/drives/rootfs", { drive_id: "rootfs", path_on_host: h.root });
  });
});

describe("the guest: a real hf-agent behind the hybrid vsock", () => {
  test("CONNECT 1024 reaches the agent: exec and files work end to end; other ports are closed before OK", async () => {
    const h = host();
    const s = await boot(h);
    const c = await agentOver(h.vsock);
    const r = await c.exec(["sh", "-c", "echo hi; cat /proc/1/comm; hostname"]);
    assert.equal(r.exitCode, 0);
    assert.equal(r.stdout.toString(), "hi\nhf-agent\nhyperfleet\n");
    // The guest's /tmp is its own tmpfs (the agent mounts it as PID 1), not the host's.
    const f = "/tmp/through-vsock.bin";
    const data = Buffer.from("through the stand-in's vsock\n".repeat(2000));
    assert.equal(await c.writeFile(f, data), data.length);
    assert.ok((await c.readFile(f)).equals(data));
    assert.ok(!existsSync(f), "the guest's /tmp must not be the host's");
    // Port 1025: nothing listens in the guest, so Firecracker closes the connection before any OK.
    const got = await new Promise<string>((res) => {
      const sock = connect(h.vsock, () => sock.write("CONNECT 1025\n"));
      let buf = "";
      sock.on("data", (b) => (buf += b.toString()));
      sock.on("close", () => res(buf));
      sock.on("error", () => undefined);
    });
    assert.equal(got, "");
    const serial = readFileSync(join(h.dir, "console.log"), "utf8");
    assert.match(serial, /Command line: console=ttyS0 reboot=k panic=1/);
    const seq = ["PUT /logger", "PUT /metrics", "PUT /serial", "PUT /boot-source", "PUT /drives/rootfs", "PUT /machine-config", "PUT /vsock", "PUT /entropy", "PUT /actions"];
    assert.deepEqual(s.requests().map((e) => `${e.method} ${e.path} ${e.status}`), seq.map((x) => `${x} 204`));
  });

  test("PATCH /vm Paused stops the guest (no answer), Resumed continues it (the answer comes)", async () => {
    const h = host();
    const s = await boot(h);
    const c = await agentOver(h.vsock);
    await expect204(s, "PATCH", "/vm", { state: "Paused" });
    assert.equal(((await s.api("GET", "/")).body as { state: string }).state, "Paused");
    const pending = c.exec(["echo", "after resume"]);
    assert.equal(await settledWithin(pending, 400), "pending", "a paused guest must not answer");
    await expect204(s, "PATCH", "/vm", { state: "Resumed" });
    const r = await settledWithin(pending, 10_000);
    assert.notEqual(r, "pending");
    assert.equal((r as { stdout: Buffer }).stdout.toString(), "after resume\n");
  });

  test("SendCtrlAltDel powers the guest off and the process exits 0; nothing of the guest is left", async () => {
    const h = host();
    const s = await boot(h);
    const c = await agentOver(h.vsock);
    const r = await c.exec(["sh", "-c", "echo $PPID"]);
    assert.equal(r.exitCode, 0);
    const guestPids = readFileSync(`/proc/${s.pid}/task/${s.pid}/children`, "utf8").trim().split(/\s+/).map(Number);
    await expect204(s, "PUT", "/actions", { action_type: "SendCtrlAltDel" });
    const exit = await settledWithin(s.exited, 15_000);
    assert.deepEqual(exit, { code: 0, signal: null });
    for (const p of guestPids) assert.ok(!processAlive(p), `guest process ${p} outlived the stand-in`);
    assert.ok(!existsSync(guestDirFor(s.pid)));
  });

  test("the guest powering itself off (agent SHUTDOWN) ends the process with 0", async () => {
    const h = host();
    const s = await boot(h);
    const c = await agentOver(h.vsock);
    await c.shutdown();
    assert.deepEqual(await settledWithin(s.exited, 15_000), { code: 0, signal: null });
  });

  test("SIGTERM ends the process by that signal (Firecracker has no handler for it) and the guest with it", async () => {
    const h = host();
    const s = await boot(h);
    await agentOver(h.vsock);
    const unshare = Number(readFileSync(`/proc/${s.pid}/task/${s.pid}/children`, "utf8").trim().split(/\s+/)[0]);
    process.kill(s.pid, "SIGTERM");
    assert.deepEqual(await settledWithin(s.exited, 10_000), { code: null, signal: "SIGTERM" });
    const deadline = Date.now() + 5000;
    while (processAlive(unshare) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.ok(!processAlive(unshare), "the guest outlived its VMM");
    assert.ok(!existsSync(guestDirFor(s.pid)));
  });

  test("PUT /vsock on a path in use is refused (Firecracker binds it then); the driver removes stale ones", async () => {
    const h = host();
    const s = await standin(h);
    writeFileSync(h.vsock, "");
    await expectFault(s, "PUT", "/vsock", { guest_cid: 3, uds_path: h.vsock }, /^Vsock config error: .*Address in use \(os error 98\)$/);
    rmSync(h.vsock);
    await expect204(s, "PUT", "/vsock", { guest_cid: 3, uds_path: h.vsock });
    assert.ok(existsSync(h.vsock), "the host-side socket exists from PUT /vsock on");
  });

  test("SIGKILL of the stand-in takes the guest with it, as a VM dies with its VMM", async () => {
    const h = host();
    const s = await boot(h);
    await agentOver(h.vsock);
    const unshare = Number(readFileSync(`/proc/${s.pid}/task/${s.pid}/children`, "utf8").trim().split(/\s+/)[0]);
    const init = Number(readFileSync(`/proc/${unshare}/task/${unshare}/children`, "utf8").trim());
    assert.ok(processAlive(init));
    process.kill(s.pid, "SIGKILL");
    await s.exited;
    const deadline = Date.now() + 5000;
    while ((processAlive(init) || processAlive(unshare)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.ok(!processAlive(init) && !processAlive(unshare), "the guest outlived its VMM");
  });
});

describe("snapshots", () => {
  test("create: only when paused; writes a vmstate and a sparse memory file of mem_size_mib MiB", async () => {
    const h = host();
    const s = await standin(h);
    await configure(s, h, { memMib: 256 });
    await expect204(s, "PUT", "/actions", { action_type: "InstanceStart" });
    const state = join(h.dir, "vm.state");
    const mem = join(h.dir, "vm.mem");
    const create = { snapshot_type: "Full", snapshot_path: state, mem_file_path: mem };
    await expectFault(s, "PUT", "/snapshot/create", create, F.CREATE_WHILE_RUNNING);
    await expect204(s, "PATCH", "/vm", { state: "Paused" });
    await expect204(s, "PUT", "/snapshot/create", create);
    const st = statSync(mem);
    assert.equal(st.size, 256 * 1024 * 1024);
    assert.ok(st.blocks * 512 < 1024 * 1024, `memory file should be sparse, has ${st.blocks} blocks`);
    assert.ok(statSync(state).size > 8);
  });

  test("load: a fresh process (logger and metrics only) restores with overrides; the guest's tmpfs comes back", async () => {
    const h = host();
    const src = await boot(h);
    const state = join(h.dir, "vm.state");
    const mem = join(h.dir, "vm.mem");
    const before = await agentOver(h.vsock);
    const saved = Buffer.from("kept in guest RAM across the snapshot\n".repeat(100));
    await before.mkdir("/tmp/app", { parents: true });
    await before.writeFile("/tmp/app/state.txt", saved);
    await expect204(src, "PATCH", "/vm", { state: "Paused" });
    await expect204(src, "PUT", "/snapshot/create", { snapshot_type: "Full", snapshot_path: state, mem_file_path: mem });
    await src.stop();

    const h2 = { ...h, dir: mkdtempSync(join(tmpdir(), "hf-fcs-")) };
    dirs.push(h2.dir);
    const vsock2 = join(h2.dir, "v2.sock");
    const dst = await standin(h2);
    await expect204(dst, "PUT", "/logger", { log_path: h.log, level: "Warning" });
    await expect204(dst, "PUT", "/metrics", { metrics_path: h.metrics });
    await expect204(dst, "PUT", "/snapshot/load", { snapshot_path: state, mem_backend: { backend_type: "File", backend_path: mem }, resume_vm: false, vsock_override: { uds_path: vsock2 } });
    assert.equal(((await dst.api("GET", "/")).body as { state: string }).state, "Paused");
    assert.deepEqual(((await dst.api("GET", "/vm/config")).body as Record<string, unknown>)["vsock"], { guest_cid: 3, uds_path: vsock2 });
    await expectFault(dst, "PUT", "/boot-source", { kernel_image_path: h.kernel }, F.NOT_SUPPORTED_POST_BOOT);
    await expect204(dst, "PATCH", "/vm", { state: "Resumed" });
    const c = await agentOver(vsock2);
    assert.equal((await c.exec(["echo", "restored"])).stdout.toString(), "restored\n");
    assert.ok((await c.readFile("/tmp/app/state.txt")).equals(saved), "the guest's /tmp was not restored");
  });

  test("load is refused after a boot resource (not fatal); a bad snapshot is a fatal restore error", async () => {
    const h = host();
    const s = await standin(h);
    await expect204(s, "PUT", "/boot-source", { kernel_image_path: h.kernel });
    await expectFault(s, "PUT", "/snapshot/load", { snapshot_path: join(h.dir, "none"), mem_file_path: join(h.dir, "none.mem") }, F.LOAD_NOT_ALLOWED);
    assert.ok(s.alive, "a refused load leaves the process usable");

    const missing = await standin(host());
    await expectFault(missing, "PUT", "/snapshot/load", { snapshot_path: join(h.dir, "none"), mem_backend: { backend_type: "File", backend_path: join(h.dir, "none.mem") } }, /^Load snapshot error: Failed to restore from snapshot: Failed to get snapshot state from file: Failed to open snapshot file: No such file or directory \(os error 2\)$/);
    assert.deepEqual(await settledWithin(missing.exited, 10_000), { code: 1, signal: null }, "Firecracker exits after a failed restore");

    const foreign = join(h.dir, "foreign.state");
    writeFileSync(foreign, "not a snapshot at all");
    writeFileSync(join(h.dir, "foreign.mem"), "");
    const f = await standin(host());
    await expectFault(f, "PUT", "/snapshot/load", { snapshot_path: foreign, mem_backend: { backend_type: "File", backend_path: join(h.dir, "foreign.mem") } }, /Failed to load snapshot state from file: Magic value does not match arch: \d+$/);
    await f.exited;
  });

  test("load applies network_overrides to the recorded interfaces; an unknown iface is a restore error", async () => {
    const h = host();
    const src = await standin(h);
    await configure(src, h);
    await expect204(src, "PUT", "/network-interfaces/eth0", { iface_id: "eth0", host_dev_name: "tap-old", guest_mac: "02:00:00:00:00:01" });
    await expect204(src, "PUT", "/actions", { action_type: "InstanceStart" });
    const state = join(h.dir, "vm.state");
    const mem = join(h.dir, "vm.mem");
    await expect204(src, "PATCH", "/vm", { state: "Paused" });
    await expect204(src, "PUT", "/snapshot/create", { snapshot_type: "Full", snapshot_path: state, mem_file_path: mem });
    await src.stop();
    const load = (over: unknown) => ({ snapshot_path: state, mem_backend: { backend_type: "File", backend_path: mem }, network_overrides: over, vsock_override: { uds_path: join(h.dir, `v-${Math.random()}.sock`) } });
    const dst = await standin(host());
    await expect204(dst, "PUT", "/snapshot/load", load([{ iface_id: "eth0", host_dev_name: "tap-new" }]));
    const ifaces = ((await dst.api("GET", "/vm/config")).body as Record<string, unknown>)["network-interfaces"];
    assert.deepEqual(ifaces, [{ iface_id: "eth0", host_dev_name: "tap-new", guest_mac: "02:00:00:00:00:01" }]);
    const bad = await standin(host());
    await expectFault(bad, "PUT", "/snapshot/load", load([{ iface_id: "eth9", host_dev_name: "tap-new" }]), /^Load snapshot error: Failed to restore from snapshot: .*eth9/);
    assert.equal((await bad.exited).code, 1);
  });

  test("load re-opens the drives by their recorded path: a drive gone since is a restore error", async () => {
    const h = host();
    const src = await boot(h);
    const state = join(h.dir, "vm.state");
    const mem = join(h.dir, "vm.mem");
    await expect204(src, "PATCH", "/vm", { state: "Paused" });
    await expect204(src, "PUT", "/snapshot/create", { snapshot_type: "Full", snapshot_path: state, mem_file_path: mem });
    await src.stop();
    rmSync(h.root);
    const dst = await standin(host());
    await expectFault(dst, "PUT", "/snapshot/load", { snapshot_path: state, mem_backend: { backend_type: "File", backend_path: mem }, resume_vm: true }, /^Load snapshot error: Failed to restore from snapshot: Failed to build microVM from snapshot: .*No such file or directory \(os error 2\)/);
    assert.equal((await dst.exited).code, 1);
  });
});
