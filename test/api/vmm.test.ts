/**
 * Which VMM is in use (GET /health) and which one each machine belongs to (`vmm`), through the API
 * of a real daemon on a real SQLite store. A machine recorded under another VMM than the daemon's
 * (as after switching HYPERFLEET_VMM) is refused with 409 VMM_MISMATCH on start, restart and the
 * resume of a suspended one, and stays as it was: it is never booted with the wrong driver.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { copyFile, mkdtemp, rm, stat } from "node:fs/promises";
import { readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import SQLite from "better-sqlite3";
import { pino } from "pino";
import { loadConfig } from "../../src/config/config.js";
import { startDaemon, type Daemon } from "../../src/daemon/daemon.js";
import { ASSETS_DIR, AUTH, assertAllCodesDeclared, json, testEnv, undeclaredCodeCatcher, vmSkipReason } from "./helpers.js";

type ErrorJson = { error: { code: string; message: string; machine_vmm?: string; daemon_vmm?: string } };
type MachineJson = { id: string; status: string; vmm: string };

let dataDir: string;
/** Its own assets dir (the shared manifest, no cached KVM verdict): the daemon must probe once, and only once. */
let assetsDir: string;
let daemon: Daemon | null = null;
const undeclared: string[] = [];

async function open(): Promise<Daemon> {
  const config = loadConfig(testEnv(dataDir, { HYPERFLEET_ASSETS_DIR: assetsDir, HYPERFLEET_ACCEL: "auto" })).unwrap();
  daemon = await startDaemon(config, { listen: false, logger: pino({ level: "warn" }, undeclaredCodeCatcher(undeclared)) });
  return daemon;
}

async function close(): Promise<void> {
  await daemon?.service.live.idle();
  await daemon?.close();
  daemon = null;
}

function req(method: string, url: string, body?: unknown) {
  return daemon!.app.inject({
    method: method as "GET",
    url,
    headers: { ...AUTH, ...(body !== undefined && { "content-type": "application/json" }) },
    ...(body !== undefined && { payload: JSON.stringify(body) }),
  });
}

/** What a daemon that ran Firecracker would have left in the store: the row says so. */
function recordAs(id: string, vmm: string, extra: Record<string, string | null> = {}): void {
  const db = new SQLite(join(dataDir, "hyperfleet.db"));
  try {
    const sets = Object.keys(extra).map((k) => `, ${k} = @${k}`).join("");
    db.prepare(`UPDATE machines SET vmm = @vmm${sets} WHERE id = @id`).run({ id, vmm, ...extra });
  } finally {
    db.close();
  }
}

/** Probe VMs of the KVM check: their run dir is named after it (src/vmm/qemu/accel.ts). */
function probeQemus(): number {
  let n = 0;
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const argv = readFileSync(`/proc/${e}/cmdline`, "utf8");
      if (argv.startsWith("qemu-system") && argv.includes(assetsDir)) n++;
    } catch {
      /* exited meanwhile */
    }
  }
  return n;
}

before(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "hf-api-vmm-"));
  assetsDir = await mkdtemp(join(tmpdir(), "hf-api-vmm-assets-"));
  // The manifest names its files by absolute path: a copy of it is a complete assets dir.
  await copyFile(join(ASSETS_DIR, "assets.json"), join(assetsDir, "assets.json"));
  await open();
});

after(async () => {
  await close();
  await rm(dataDir, { recursive: true, force: true });
  await rm(assetsDir, { recursive: true, force: true });
  assertAllCodesDeclared(undeclared);
});

test("GET /health names the VMM and its acceleration, without a key, and never probes again", { skip: vmSkipReason() ?? false }, async () => {
  const verdictFile = join(assetsDir, "accel.json");
  const verdict = JSON.parse(readFileSync(verdictFile, "utf8")) as { accel: string };
  const probedAt = (await stat(verdictFile)).mtimeMs;
  const answers: { status: string; vmm: { kind: string; accel: string } }[] = [];
  let probes = 0;
  for (let i = 0; i < 20; i++) {
    const h = await daemon!.app.inject({ method: "GET", url: "/health" });
    probes += probeQemus();
    assert.equal(h.statusCode, 200, h.body);
    answers.push(json<{ status: string; vmm: { kind: string; accel: string } }>(h));
  }
  assert.deepEqual(answers[0]!.vmm, { kind: "qemu", accel: verdict.accel }, "the registry's driver: QEMU with the probe's verdict");
  assert.ok(answers.every((a) => a.status === "ok" && JSON.stringify(a.vmm) === JSON.stringify(answers[0]!.vmm)));
  assert.equal(probes, 0, "no probe VM while /health was asked");
  assert.equal((await stat(verdictFile)).mtimeMs, probedAt, "the verdict was made once, at startup");
});

test("every machine records its VMM: in its JSON, in the list, and in the OpenAPI schema", async () => {
  const r = await req("POST", "/machines", { name: "shows-vmm", vcpu_count: 1, mem_size_mib: 128 });
  assert.equal(r.statusCode, 201, r.body);
  const m = json<MachineJson>(r);
  assert.equal(m.vmm, "qemu");
  assert.equal(json<MachineJson>(await req("GET", `/machines/${m.id}`)).vmm, "qemu");
  const listed = json<MachineJson[]>(await req("GET", "/machines")).find((x) => x.id === m.id);
  assert.equal(listed?.vmm, "qemu");
  const doc = json<{ components: { schemas: Record<string, { properties: Record<string, unknown>; required: string[] }> } }>(await daemon!.app.inject({ method: "GET", url: "/openapi.json" }));
  const machine = doc.components.schemas["Machine"]!;
  assert.ok(machine.required.includes("vmm"));
  assert.match(JSON.stringify(machine.properties["vmm"]), /"qemu".*"firecracker"/);
  assert.equal((await req("DELETE", `/machines/${m.id}`)).statusCode, 204);
});

test("a machine of another VMM is refused with 409 VMM_MISMATCH on start, restart and resume, and stays as it was", async () => {
  const made = json<MachineJson>(await req("POST", "/machines", { name: "fc-made", vcpu_count: 1, mem_size_mib: 128 }));
  const suspended = json<MachineJson>(await req("POST", "/machines", { name: "fc-suspended", vcpu_count: 1, mem_size_mib: 128 }));
  await close();
  recordAs(made.id, "firecracker");
  recordAs(suspended.id, "firecracker", { status: "suspended", restore_from: "suspend" });
  await open();

  for (const [id, action, status] of [[made.id, "start", "created"], [made.id, "restart", "created"], [suspended.id, "resume", "suspended"], [suspended.id, "start", "suspended"]] as const) {
    const r = await req("POST", `/machines/${id}/${action}`);
    assert.equal(r.statusCode, 409, `${action}: ${r.body}`);
    const e = json<ErrorJson>(r).error;
    assert.equal(e.code, "VMM_MISMATCH");
    assert.equal(e.machine_vmm, "firecracker");
    assert.equal(e.daemon_vmm, "qemu");
    assert.match(e.message, /created under firecracker and this daemon runs qemu/);
    assert.match(e.message, /HYPERFLEET_VMM=firecracker/);
    const now = json<MachineJson & { last_error: unknown }>(await req("GET", `/machines/${id}`));
    assert.equal(now.status, status, `${action} changed nothing`);
    assert.equal(now.vmm, "firecracker");
    assert.equal(now.last_error, null);
  }
  // Deleting needs no driver of its VMM's kind to boot anything: allowed.
  assert.equal((await req("DELETE", `/machines/${made.id}`)).statusCode, 204);
  assert.equal((await req("DELETE", `/machines/${suspended.id}`)).statusCode, 204);
});
