import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { FirecrackerContract } from "../../src/vmm/firecracker/spec.js";
import {
  buildConfigureRequests,
  buildRestoreRequests,
  firecrackerBootArgs,
  firecrackerPaths,
  pauseVm,
  resumeVm,
  sendCtrlAltDel,
  snapshotCreate,
  type FcRequest,
} from "../../src/vmm/firecracker/config.js";
import { buildKernelArgs } from "../../src/vmm/kernel-args.js";
import type { VmSpec } from "../../src/core/ports/vmm-driver.js";

const SPEC = new URL("../../specs/firecracker/firecracker.yaml", import.meta.url);
// The shared copy the issue names, next to the repository; the in-repo copy must be the same bytes.
const SHARED_SPEC = new URL("../../../shared/specs/firecracker/firecracker.yaml", import.meta.url);
const contract = new FirecrackerContract(SPEC);
const golden = (name: string) => fileURLToPath(new URL(`./golden/${name}`, import.meta.url));

const full: VmSpec = {
  id: "vm_FC",
  vcpus: 2,
  memMib: 256,
  kernelPath: "/data/kernel/vmlinux",
  initrdPath: "/data/initramfs.cpio",
  kernelArgs: buildKernelArgs({ hostname: "vm_FC", console: "ttyS0", tscKhz: 2596132 }) + " nomodule",
  rootDisk: { path: "/run/vm_FC/rootfs.raw", format: "raw" },
  extraDisks: [{ path: "/data/extra.raw" }, { path: "/data/base.ext4", readOnly: true }],
  nics: [{ tap: "hf-tap0", mac: "02:00:00:00:00:01" }],
  runDir: "/run/vm_FC",
};
const minimal: VmSpec = { id: "vm_MIN", vcpus: 1, memMib: 128, kernelPath: "/k/vmlinux", kernelArgs: "console=ttyS0", rootDisk: { path: "/r.raw", readOnly: true }, runDir: "/run/vm_MIN" };

function everyRequest(spec: VmSpec): FcRequest[] {
  const paths = firecrackerPaths(spec.runDir);
  return [
    ...buildConfigureRequests(spec, paths, { guestCid: 3 }),
    pauseVm(),
    resumeVm(),
    sendCtrlAltDel(),
    snapshotCreate("/snap/state", "/snap/memory"),
    ...buildRestoreRequests(spec, paths, { statePath: "/snap/state", memPath: "/snap/memory", resume: true }),
    ...buildRestoreRequests(spec, paths, { statePath: "/snap/state", memPath: "/snap/memory", resume: false }),
  ];
}

/** sha256 of the official v1.16.1 definition as given to us (../shared/specs/firecracker/), taken when it was vendored. */
const OFFICIAL_SHA256 = "a514abec7b29700c5ca8bdaebbb960e4ffb46fe1fd4869094c6c63630a6fa41c";

test("the in-repo spec is Firecracker v1.16.1, byte for byte the official definition", () => {
  assert.equal(contract.version, "1.16.1");
  assert.equal(createHash("sha256").update(readFileSync(SPEC)).digest("hex"), OFFICIAL_SHA256);
  // Where the shared copy is at hand (a developer's checkout), it is the same file.
  if (existsSync(SHARED_SPEC)) assert.equal(readFileSync(SPEC, "utf8"), readFileSync(SHARED_SPEC, "utf8"));
});

for (const [name, spec] of [["NIC, extra and read-only disks", full], ["minimal", minimal]] as const) {
  test(`every request the builders produce validates against the spec (${name})`, () => {
    const reqs = everyRequest(spec);
    assert.ok(reqs.length >= 14);
    for (const r of reqs) assert.equal(contract.validateRequest(r.method, r.path, r.body), null, `${r.method} ${r.path} ${JSON.stringify(r.body)}`);
  });
}

test("ids in a device path equal the body's id and fit Firecracker's id rule (checked_id: [A-Za-z0-9_]{1,64})", () => {
  for (const r of everyRequest(full)) {
    const m = /^\/(drives|network-interfaces)\/(.+)$/.exec(r.path);
    if (!m) continue;
    const body = r.body as Record<string, unknown>;
    assert.equal(m[2], m[1] === "drives" ? body.drive_id : body.iface_id);
    assert.match(m[2]!, /^[A-Za-z0-9_]{1,64}$/);
  }
});

test("configure sequence of a sample VM matches the golden file", () => {
  const actual = JSON.stringify(buildConfigureRequests(full, firecrackerPaths(full.runDir), { guestCid: 3 }), null, 2) + "\n";
  if (process.env.UPDATE_GOLDEN) writeFileSync(golden("firecracker-configure.json"), actual);
  assert.equal(actual, readFileSync(golden("firecracker-configure.json"), "utf8"));
});

test("boot args are explicit and never carry nomodule (our virtio drivers are modules)", () => {
  const boot = buildConfigureRequests(full, firecrackerPaths("/r"), { guestCid: 3 }).find((r) => r.path === "/boot-source")!;
  const args = (boot.body as { boot_args: string }).boot_args;
  assert.ok(full.kernelArgs.split(" ").includes("nomodule"));
  assert.ok(!args.split(" ").includes("nomodule"));
  assert.ok(args.split(" ").includes("console=ttyS0"));
  assert.equal(firecrackerBootArgs(" a  nomodule b "), "a b");
});

test("drives are raw: root first and writable unless read-only, extra disks keep their read-only flag", () => {
  const drives = buildConfigureRequests(full, firecrackerPaths("/r"), { guestCid: 3 }).filter((r) => r.path.startsWith("/drives/")).map((r) => r.body);
  assert.deepEqual(drives, [
    { drive_id: "rootfs", path_on_host: "/run/vm_FC/rootfs.raw", is_root_device: true, is_read_only: false },
    { drive_id: "disk1", path_on_host: "/data/extra.raw", is_root_device: false, is_read_only: false },
    { drive_id: "disk2", path_on_host: "/data/base.ext4", is_root_device: false, is_read_only: true },
  ]);
  assert.throws(() => buildConfigureRequests({ ...full, rootDisk: { path: "/x.qcow2", format: "qcow2" } }, firecrackerPaths("/r"), { guestCid: 3 }), /raw disk images only/);
});

test("a restore sends only logger and metrics before the load, with the new TAPs and vsock socket", () => {
  const reqs = buildRestoreRequests(full, firecrackerPaths("/new"), { statePath: "/s/state", memPath: "/s/mem", resume: true });
  assert.deepEqual(reqs.map((r) => r.path), ["/logger", "/metrics", "/snapshot/load"]);
  assert.deepEqual(reqs[2]!.body, {
    snapshot_path: "/s/state",
    mem_backend: { backend_type: "File", backend_path: "/s/mem" },
    resume_vm: true,
    vsock_override: { uds_path: "/new/vsock.sock" },
    network_overrides: [{ iface_id: "eth0", host_dev_name: "hf-tap0" }],
  });
});

// Negative cases: each proves one rule the validator enforces (they fail if validation is off).
const code = (method: string, path: string, body?: unknown) => contract.validateRequest(method, path, body)?.code ?? null;

test("an unknown path is refused", () => {
  assert.equal(code("PUT", "/drive/rootfs", { drive_id: "rootfs", is_root_device: true }), "unknown_path");
  assert.equal(code("PUT", "/drives/a/b", { drive_id: "a", is_root_device: true }), "unknown_path");
  assert.equal(code("PUT", "/drives/", { drive_id: "", is_root_device: true }), "unknown_path");
});

test("a method the path does not have is refused", () => {
  assert.equal(code("PUT", "/vm", { state: "Paused" }), "method_not_allowed");
  assert.equal(code("POST", "/actions", { action_type: "InstanceStart" }), "method_not_allowed");
  assert.equal(code("PATCH", "/boot-source", { kernel_image_path: "/k" }), "method_not_allowed");
});

test("a missing required field or body is refused", () => {
  assert.equal(code("PUT", "/drives/rootfs", { drive_id: "rootfs", path_on_host: "/r" }), "body_invalid");
  assert.equal(code("PUT", "/vsock", { uds_path: "/v" }), "body_invalid");
  assert.equal(code("PUT", "/snapshot/load", { mem_backend: { backend_type: "File", backend_path: "/m" } }), "body_invalid");
  assert.equal(code("PUT", "/actions"), "body_required");
  assert.equal(code("PUT", "/entropy"), "body_required");
});

test("a wrong type is refused", () => {
  assert.equal(code("PUT", "/machine-config", { vcpu_count: "2", mem_size_mib: 256 }), "body_invalid");
  assert.equal(code("PUT", "/machine-config", { vcpu_count: 1.5, mem_size_mib: 256 }), "body_invalid");
  assert.equal(code("PUT", "/drives/rootfs", { drive_id: "rootfs", is_root_device: "true" }), "body_invalid");
});

test("an enum violation and out-of-range numbers are refused", () => {
  assert.equal(code("PATCH", "/vm", { state: "Stopped" }), "body_invalid");
  assert.equal(code("PUT", "/actions", { action_type: "instancestart" }), "body_invalid");
  assert.equal(code("PUT", "/machine-config", { vcpu_count: 33, mem_size_mib: 256 }), "body_invalid");
  assert.equal(code("PUT", "/machine-config", { vcpu_count: 0, mem_size_mib: 256 }), "body_invalid");
  assert.equal(code("PUT", "/vsock", { guest_cid: 2, uds_path: "/v" }), "body_invalid");
  assert.equal(code("PUT", "/snapshot/load", { snapshot_path: "/s", mem_backend: { backend_type: "Mmap", backend_path: "/m" } }), "body_invalid");
});

test("an unknown property is refused (Firecracker denies unknown fields; the spec leaves objects open)", () => {
  assert.equal(code("PUT", "/boot-source", { kernel_image_path: "/k", bootargs: "x" }), "body_invalid");
  assert.equal(code("PUT", "/drives/rootfs", { drive_id: "rootfs", is_root_device: true, read_only: true }), "body_invalid");
  // The spec's one explicit open object stays open; the literal reading lets unknown fields through.
  assert.equal(code("PUT", "/mmds", { anything: { nested: 1 } }), null);
  const literal = new FirecrackerContract(SPEC, { closedObjects: false });
  assert.equal(literal.validateRequest("PUT", "/boot-source", { kernel_image_path: "/k", bootargs: "x" }), null);
  const raw = parse(readFileSync(SPEC, "utf8"), { schema: "core" }) as { definitions: Record<string, { additionalProperties?: unknown }> };
  const closedInSpec = Object.entries(raw.definitions).filter(([, d]) => d.additionalProperties === false);
  assert.deepEqual(closedInSpec, [], "the spec itself closes no object (if it starts to, this reading needs revisiting)");
});

test("a body on an operation without one is refused", () => {
  assert.equal(code("GET", "/machine-config", { vcpu_count: 1, mem_size_mib: 128 }), "body_not_allowed");
  assert.equal(code("PATCH", "/balloon/hinting/stop", {}), "body_not_allowed");
  assert.equal(code("GET", "/"), null);
});

test("YAML 1.2 core schema: the logger level Off stays a string (YAML 1.1 would read it as false)", () => {
  const text = readFileSync(SPEC, "utf8");
  const core = parse(text, { schema: "core" }) as { definitions: { Logger: { properties: { level: { enum: unknown[] } } } } };
  const yaml11 = parse(text, { version: "1.1" }) as typeof core;
  assert.deepEqual(core.definitions.Logger.properties.level.enum, ["Error", "Warning", "Info", "Debug", "Trace", "Off"]);
  assert.ok(yaml11.definitions.Logger.properties.level.enum.includes(false), "the pitfall is real: 1.1 turns Off into false");
  assert.equal(code("PUT", "/logger", { level: "Off" }), null);
  assert.equal(code("PUT", "/logger", { level: false }), "body_invalid");
});

test("volume disks: extra drives after the root one, in order; the serial (QEMU's) is not sent, and every request validates", () => {
  const spec: VmSpec = { ...minimal, extraDisks: [{ path: "/data/volumes/vol_A.ext4", format: "raw", serial: "hfvol0" }, { path: "/data/volumes/vol_B.ext4", format: "raw", serial: "hfvol1" }] };
  const reqs = buildConfigureRequests(spec, firecrackerPaths("/r"), { guestCid: 3 });
  for (const r of reqs) assert.equal(contract.validateRequest(r.method, r.path, r.body), null, `${r.method} ${r.path} ${JSON.stringify(r.body)}`);
  const drives = reqs.filter((r) => r.path.startsWith("/drives/")).map((r) => r.body as Record<string, unknown>);
  assert.deepEqual(drives.map((d) => [d.drive_id, d.path_on_host, d.is_root_device, d.is_read_only]), [
    ["rootfs", "/r.raw", true, true],
    ["disk1", "/data/volumes/vol_A.ext4", false, false],
    ["disk2", "/data/volumes/vol_B.ext4", false, false],
  ]);
  assert.ok(drives.every((d) => !("serial" in d)));
});
