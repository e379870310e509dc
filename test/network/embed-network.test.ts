/**
 * Library machines with a network (docs/adr/0008, "Library machines"). The whole file runs inside
 * a network namespace it creates (netns.ts re-executes it there), so the library, which runs in
 * this process, changes only that namespace. One real VM (TCG): its guest has 169.254.0.21 and its
 * busybox httpd answers on the exposed port; two library instances sharing a data dir (two
 * "processes") never hand out one slot or port twice; dead leases are reclaimed; and shutdown
 * leaves no lease, namespace, veth or rule.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile, execFileSync, spawn } from "node:child_process";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isHyperfleetError } from "../../src/core/errors.js";
import { Machine } from "../../src/embed/machine.js";
import { LibraryNetwork } from "../../src/network/library-network.js";
import { processStart, type Owner } from "../../src/network/lease-files.js";
import { addressPlan, instanceTag } from "../../src/network/address-plan.js";
import { LinuxNetworkFabric } from "../../src/network/fabric.js";
import type { VmNetworkSpec } from "../../src/core/ports/network.js";
import type { ExposedPort, MachineNetwork } from "../../src/core/machine.js";
import { isAlive } from "../../src/vmm/process.js";
import { MANIFEST_FILE } from "../../src/assets/index.js";
import { dataDir as assetsDir, leftoverQemu, tempRunDir } from "../integration/helpers.js";
import { inTestNetns, IP, listNetns, netnsSkipReason } from "./netns.js";
import { deadOwner } from "../lease-fixtures.js";

const net = await inTestNetns(import.meta.url);
const root = fileURLToPath(new URL("../..", import.meta.url));
const skip =
  netnsSkipReason() ??
  (existsSync(join(assetsDir(), MANIFEST_FILE)) ? null : `no guest assets in ${assetsDir()} (npm run setup)`) ??
  (net === null ? "no test namespace" : null) ??
  false;

let dataDir = "";
before(() => {
  if (skip) return;
  // Assets and the accelerator probe from the real data dir; leases and VMs in a throwaway one.
  dataDir = mkdtempSync(join(tmpdir(), "hf-embnet-"));
  for (const f of [MANIFEST_FILE, "accel.json"]) if (existsSync(join(assetsDir(), f))) copyFileSync(join(assetsDir(), f), join(dataDir, f));
});
after(() => {
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

function leaseFiles(dir = dataDir): string[] {
  const out: string[] = [];
  for (const sub of ["slots", "ports"]) {
    const d = join(dir, "network", sub);
    if (existsSync(d)) out.push(...readdirSync(d).map((n) => `${sub}/${n}`));
  }
  return out;
}

/** What the library leaves on the host (this namespace) besides lease files. */
function hostLeftovers(dir: string): { namespaces: string[]; veths: string[]; tables: string } {
  const tag = instanceTag(`library:${dir}`);
  const veths = (JSON.parse(execFileSync(IP, ["-j", "link", "show"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] })) as { ifname: string }[])
    .map((l) => l.ifname)
    .filter((n) => n.startsWith("hfl"));
  return {
    namespaces: listNetns().filter((n) => n.startsWith(`hf-${tag}-`)),
    veths,
    tables: execFileSync("nft", ["list", "tables"], { encoding: "utf8" }),
  };
}


test("two library instances claiming at once never share a slot or a port; release leaves no lease", { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "hf-embnet-claims-"));
  try {
    // Two "processes": separate instances, nothing shared but the data dir's lease files.
    const a = new LibraryNetwork({ dataDir: dir, portRange: { min: 31500, max: 31519 } });
    const b = new LibraryNetwork({ dataDir: dir, portRange: { min: 31500, max: 31519 } });
    const ids = Array.from({ length: 16 }, (_, i) => `vm_claim${i}`);
    const specs = await Promise.all(ids.map((id, i) => (i % 2 ? a : b).claim(id, {}, [{ guestPort: 80 }])));
    const slots = specs.map((s) => s.network.slot);
    const ports = specs.map((s) => s.exposedPorts[0]!.hostPort);
    assert.equal(new Set(slots).size, 16, `slots ${slots.join(",")}`);
    assert.equal(new Set(ports).size, 16, `ports ${ports.join(",")}`);
    assert.deepEqual([...slots].sort((x, y) => x - y), Array.from({ length: 16 }, (_, i) => i + 1), "the lowest free slots");
    for (const s of specs) assert.ok(s.network.ip.startsWith("10.211."), s.network.ip);
    assert.equal(leaseFiles(dir).length, 32);

    // A named port another machine holds, and a range with 4 ports left for 5 wishes.
    const held = specs[0]!.exposedPorts[0]!;
    await assert.rejects(a.claim("vm_named", {}, [{ guestPort: 80, hostPort: held.hostPort }]), (e: unknown) => isHyperfleetError(e) && e.code === "PORT_UNAVAILABLE");
    const wishes = Array.from({ length: 5 }, () => ({ guestPort: 80 }));
    await assert.rejects(b.claim("vm_many", {}, wishes), (e: unknown) => isHyperfleetError(e) && e.code === "PORT_RANGE_EXHAUSTED");
    await assert.rejects(a.claim(ids[3]!, {}, []), (e: unknown) => isHyperfleetError(e) && e.code === "MACHINE_ALREADY_EXISTS");
    await assert.rejects(a.claim("vm_bad", { allowOut: ["10.0.0.1/8"] }, []), (e: unknown) => isHyperfleetError(e) && e.code === "INVALID_ARGUMENT");
    assert.equal(leaseFiles(dir).length, 32, "failed claims leave nothing");

    await Promise.all(ids.map((id, i) => (i % 2 ? b : a).release(id)));
    assert.deepEqual(leaseFiles(dir), []);
    assert.deepEqual(hostLeftovers(dir).veths, []);
    assert.doesNotMatch(hostLeftovers(dir).tables, /hyperfleet_lib/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a lease whose owner and VMM are dead is reclaimed; one whose VMM lives is kept", { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "hf-embnet-stale-"));
  const vmm = spawn("sleep", ["60"]);
  t.after(() => {
    vmm.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });
  const lib = new LibraryNetwork({ dataDir: dir });
  const dead = await deadOwner();
  const stale = await lib.claim("vm_stale", {}, [{ guestPort: 22, hostPort: 31990 }]);
  const kept = await lib.claim("vm_kept", {}, []);
  const rewrite = (slot: number, machineId: string, spec: unknown, vmmOwner: Owner | null) =>
    writeFileSync(join(dir, "network", "slots", `${slot}.json`), JSON.stringify({ machineId, owner: dead, vmm: vmmOwner, spec }));
  // As a crashed process leaves them: the owner gone, for one of them its VMM still running.
  rewrite(stale.network.slot, "vm_stale", stale, null);
  rewrite(kept.network.slot, "vm_kept", kept, { pid: vmm.pid!, start: (await processStart(vmm.pid!))! });

  const next = await new LibraryNetwork({ dataDir: dir }).claim("vm_next", {}, [{ guestPort: 22, hostPort: 31990 }]);
  assert.equal(next.network.slot, stale.network.slot, "the dead machine's slot is free again");
  assert.equal(next.exposedPorts[0]!.hostPort, 31990, "and so is its port");
  assert.deepEqual((await lib.liveSpecs()).map((s) => s.machineId).sort(), ["vm_kept", "vm_next"]);
  await lib.release("vm_next");
  await lib.release("vm_kept");
  assert.deepEqual(leaseFiles(dir), []);
});

test("a port a host process took since the claim refuses the bring-up before anything comes up", { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "hf-embnet-taken-"));
  const lib = new LibraryNetwork({ dataDir: dir });
  const server = createServer();
  try {
    const spec = await lib.claim("vm_taken", {}, [{ guestPort: 80 }]);
    const port = spec.exposedPorts[0]!;
    await new Promise<void>((resolve) => server.listen(port.hostPort, port.hostIp, resolve));
    await assert.rejects(lib.up(spec), (e: unknown) => isHyperfleetError(e) && e.code === "PORT_UNAVAILABLE" && e.message.includes(`${port.hostPort}`));
    const left = hostLeftovers(dir);
    assert.deepEqual([left.namespaces, left.veths], [[], []], "nothing came up");
    await new Promise((r) => server.close(r));
    await lib.up(spec);
    assert.equal(hostLeftovers(dir).namespaces.length, 1);
    await lib.release("vm_taken");
    assert.deepEqual(hostLeftovers(dir).namespaces, []);
  } finally {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("two instances' networks both stay in the host table, next to a daemon's fabric whose sweep leaves them alone", { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "hf-embnet-rules-"));
  const daemon = new LinuxNetworkFabric({ plan: addressPlan("10.210.0.0/16"), tag: instanceTag(dir), hostNetns: null });
  const dspec: VmNetworkSpec = {
    machineId: "vm_daemon",
    network: { internet: true, allowOut: [], denyOut: [], privateNetwork: null, slot: 1, ip: "10.210.0.3", gateway: "10.210.0.2", mac: "02:00:00:00:00:01", dns: [] },
    exposedPorts: [],
  };
  const a = new LibraryNetwork({ dataDir: dir });
  const b = new LibraryNetwork({ dataDir: dir });
  try {
    await daemon.attach(dspec);
    await daemon.applyHostRules([dspec]);
    const sa = await a.claim("vm_a", {}, [{ guestPort: 80 }]);
    const sb = await b.claim("vm_b", {}, []);
    // Brought up at once by two instances: each rebuild must include the other's VM.
    await Promise.all([a.up(sa), b.up(sb)]);
    const lib = () => execFileSync("nft", ["list", "table", "inet", "hyperfleet_lib"], { encoding: "utf8" });
    assert.match(lib(), /"hfl1" \. 10\.211\.0\.3/);
    assert.match(lib(), /"hfl2" \. 10\.211\.0\.5/);
    assert.match(lib(), new RegExp(`tcp dport ${sa.exposedPorts[0]!.hostPort} dnat ip to 10\\.211\\.0\\.3:80`));

    // The daemon keeps only its machine: the library's namespaces and hfl veths are not its strays.
    const swept = await daemon.sweep(new Set(["vm_daemon"]));
    assert.deepEqual(swept, { namespaces: [], links: [] });
    assert.deepEqual(hostLeftovers(dir).veths.sort(), ["hfl1", "hfl2"]);

    await a.release("vm_a");
    assert.doesNotMatch(lib(), /hfl1/);
    assert.match(lib(), /"hfl2" \. 10\.211\.0\.5/, "b's VM survives a's rebuild");
    await b.release("vm_b");
    const left = hostLeftovers(dir);
    assert.deepEqual([left.namespaces, left.veths], [[], []]);
    assert.doesNotMatch(left.tables, /hyperfleet_lib/);
    // The daemon's table and veth were never touched by the library.
    assert.match(execFileSync("nft", ["list", "table", "inet", "hyperfleet"], { encoding: "utf8" }), /"hfv1" \. 10\.210\.0\.3/);
    assert.ok(execFileSync(IP, ["-o", "link", "show", "hfv1"], { encoding: "utf8" }).includes("hfv1"));
    assert.deepEqual(leaseFiles(dir), []);
  } finally {
    await daemon.detach("vm_daemon");
    execFileSync("nft", ["delete", "table", "inet", "hyperfleet"], { stdio: "ignore" });
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a library VM with a network: guest at 169.254.0.21, httpd through its exposed port, its lease outlives the process that started it, nothing left after shutdown", { skip, timeout: 240_000 }, async (t) => {
  const runDir = await tempRunDir();
  const script = join(root, `.embnet-parent-${process.pid}.mts`);
  // The process that starts the VM exits without stopping it (inherits this test's namespace).
  writeFileSync(
    script,
    `
    import { Machine } from "./src/embed/machine.ts";
    const m = new Machine({ vcpuCount: 1, memSizeMib: 256, dataDir: ${JSON.stringify(dataDir)}, runDir: ${JSON.stringify(runDir)},
      network: { internet: false }, exposedPorts: [{ guestPort: 8080 }] });
    if (m.network !== null) throw new Error("a network before the first start");
    (await m.start({ timeoutMs: 180_000 })).unwrap();
    (await m.writeFile("/tmp/www/index.html", "hello through the exposed port\\n", { mkdirs: true })).unwrap();
    const httpd = (await m.exec(["httpd", "-p", "8080", "-h", "/tmp/www"])).unwrap();
    if (httpd.exitCode !== 0) throw new Error(httpd.stderr);
    console.log(JSON.stringify({ id: m.id, pid: m.pid, network: m.network, exposedPorts: m.exposedPorts }));
    process.exit(0);
  `,
  );
  let adopted: Machine | null = null;
  let vmPid = 0;
  t.after(async () => {
    await adopted?.destroy();
    if (!adopted && vmPid && (await isAlive(vmPid))) process.kill(vmPid, "SIGKILL");
    rmSync(script, { force: true });
    rmSync(runDir, { recursive: true, force: true });
  });
  const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", script], { cwd: root, timeout: 200_000 });
  const started = JSON.parse(stdout.trim().split("\n").pop()!) as { id: string; pid: number; network: MachineNetwork; exposedPorts: ExposedPort[] };
  vmPid = started.pid;
  const n = started.network;
  assert.deepEqual([n.slot, n.ip, n.gateway, n.internet], [1, "10.211.0.3", "10.211.0.2", false]);
  const [port] = started.exposedPorts;
  assert.ok(port && port.hostIp === "127.0.0.1" && port.guestPort === 8080 && port.hostPort >= 31000 && port.hostPort <= 31999, JSON.stringify(port));
  assert.deepEqual(leaseFiles().sort(), [`ports/tcp-127.0.0.1-${port.hostPort}.json`, "slots/1.json"]);

  // Its process is gone but its VMM is named in the lease: another claim must not take slot 1.
  const lease = JSON.parse(readFileSync(join(dataDir, "network", "slots", "1.json"), "utf8")) as { vmm: { pid: number } | null };
  assert.equal(lease.vmm?.pid, started.pid);
  const other = new LibraryNetwork({ dataDir });
  assert.equal((await other.claim("vm_other", {}, [])).network.slot, 2);
  await other.release("vm_other");

  let body = "";
  // httpd daemonizes before it listens: the first connect may come too early.
  for (let i = 0; i < 50 && body === ""; i++) {
    try {
      const res = await fetch(`http://127.0.0.1:${port.hostPort}/index.html`, { signal: AbortSignal.timeout(5000) });
      body = await res.text();
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  assert.equal(body, "hello through the exposed port\n");

  const tag = instanceTag(`library:${dataDir}`);
  const during = hostLeftovers(dataDir);
  assert.deepEqual(during.namespaces, [`hf-${tag}-${started.id}`]);
  assert.deepEqual(during.veths, ["hfl1"]);
  assert.match(during.tables, /table inet hyperfleet_lib/);

  adopted = await Machine.adopt({ vcpuCount: 1, memSizeMib: 256, dataDir, id: started.id, runDir });
  assert.ok(adopted, "adopted");
  assert.deepEqual(adopted.network, n);
  assert.deepEqual(adopted.exposedPorts, started.exposedPorts);
  const addr = (await adopted.exec(["ip", "-4", "-o", "addr", "show", "eth0"])).unwrap();
  assert.match(addr.stdout, /inet 169\.254\.0\.21\/30 /);

  (await adopted.shutdown()).unwrap();
  assert.equal(adopted.network, null);
  assert.deepEqual(leaseFiles(), []);
  const left = hostLeftovers(dataDir);
  assert.deepEqual(left.namespaces, []);
  assert.deepEqual(left.veths, []);
  assert.doesNotMatch(left.tables, /hyperfleet_lib/);
  assert.equal(await isAlive(started.pid), false);
  assert.deepEqual(await leftoverQemu(), []);
});

test("a start that fails after its network came up takes it down and gives the leases back", { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "hf-embnet-fail-"));
  for (const f of [MANIFEST_FILE, "accel.json"]) if (existsSync(join(dataDir, f))) copyFileSync(join(dataDir, f), join(dir, f));
  const runDir = await tempRunDir();
  // QEMU cannot open this kernel: the boot fails after the claim and the bring-up.
  const m = new Machine({ vcpuCount: 1, memSizeMib: 128, dataDir: dir, runDir, kernelImagePath: join(dir, "no-such-kernel"), network: {}, exposedPorts: [{ guestPort: 80 }] });
  try {
    const r = await m.start({ timeoutMs: 30_000 });
    assert.ok(!r.ok && ["VMM_SPAWN_FAILED", "VMM_EXITED"].includes(r.error.code), r.ok ? "started" : `${r.error.code}: ${r.error.message}`);
    assert.equal(m.network, null);
    assert.deepEqual(leaseFiles(dir), []);
    const left = hostLeftovers(dir);
    assert.deepEqual([left.namespaces, left.veths], [[], []]);
    assert.doesNotMatch(left.tables, /hyperfleet_lib/);
  } finally {
    await m.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("exposedPorts without a network is INVALID_ARGUMENT before anything is claimed", { skip }, async () => {
  const m = new Machine({ vcpuCount: 1, memSizeMib: 128, dataDir, runDir: await tempRunDir(), exposedPorts: [{ guestPort: 80 }] });
  const r = await m.start();
  assert.equal(r.ok, false);
  assert.ok(!r.ok && r.error.code === "INVALID_ARGUMENT", JSON.stringify(!r.ok && r.error.code));
  assert.deepEqual(leaseFiles(), []);
});
