/**
 * Warm image templates through the HTTP API, with a real loopback registry and real VMs (docs/adr/
 * 0009): the first boot of an image is captured before its main process starts; the next machine
 * of that image and shape is restored from it and runs its own main process, with its own
 * hostname, RNG and disk (nothing the first machine wrote after booting); another shape boots
 * cold. Templates are not listed as snapshots and outlive their machines.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { buildBusyboxLayout, push, workDir } from "../images/fixtures.js";
import { startRegistry, type TestRegistry } from "../images/registry.js";
import { vmSkipReason } from "./helpers.js";
import { body, exec, startImageDaemon, waitStatus, type ImageDaemon, type MachineJson } from "./images-helpers.js";

const skip = vmSkipReason();
let registry: TestRegistry;
let fixtures: string;
let d: ImageDaemon;
let image = "";

before(async () => {
  if (skip) return;
  registry = await startRegistry();
  fixtures = await workDir();
  image = `${registry.host}/test/busybox:tpl`;
  await push(await buildBusyboxLayout(fixtures), "bb", image);
  d = await startImageDaemon({ HYPERFLEET_INSECURE_REGISTRIES: registry.host, HYPERFLEET_WARM_TEMPLATES: "on" });
});

after(async () => {
  await d?.close();
  await registry?.stop();
  if (fixtures) await rm(fixtures, { recursive: true, force: true });
});

/** Daemon log lines with this message (about this machine, when given). */
const logLines = (msg: string, id?: string) =>
  d.logs().split("\n").filter((l) => l.includes(`"msg":"${msg}"`) && (id === undefined || l.includes(id)));

async function boot(name: string, cmd: string, mem = 256): Promise<MachineJson & { snapshot_id: string | null }> {
  const r = await d.req("POST", "/machines", { name, vcpu_count: 1, mem_size_mib: mem, image, cmd: ["/bin/busybox", "sh", "-c", cmd], start: true });
  assert.equal(r.statusCode, 201, r.body);
  const id = body<MachineJson>(r).id;
  return (await waitStatus(d, id, "running", 120_000)) as MachineJson & { snapshot_id: string | null };
}

async function mainLog(id: string): Promise<string> {
  for (let i = 0; i < 50; i++) {
    const r = await d.req("GET", `/machines/${id}/logs`);
    assert.equal(r.statusCode, 200, r.body);
    if (r.body.length > 0) return r.body;
    await new Promise((res) => setTimeout(res, 100));
  }
  return "";
}

test("the second machine of an image starts from the first one's template and runs its own main process", { skip: skip ?? false, timeout: 240_000 }, async (ctx) => {
  const a = await boot("tpl-a", "echo first-$(hostname); exec sleep 1000");
  assert.equal(logLines("warm template captured", a.id).length, 1, "the first boot is captured");
  assert.equal(a.snapshot_id, null, "the machine a template was captured from does not depend on it");
  assert.equal(await mainLog(a.id), `first-${a.id}\n`);
  assert.equal((await exec(d, a.id, ["sh", "-c", "echo mine > /home/app/after.txt"])).exit_code, 0);
  // The image has busybox and its sh, no applet links.
  const rnd = ["sh", "-c", "busybox head -c 32 /dev/urandom | busybox od -An -tx1 | busybox tr -d ' \\n'"];
  const ra = (await exec(d, a.id, rnd)).stdout;

  const t0 = Date.now();
  const b = await boot("tpl-b", "echo second-$(hostname); exec sleep 1000");
  ctx.diagnostic(`machine from a warm template running ${Date.now() - t0} ms after its create`);
  assert.equal(logLines("restored from a warm template", b.id).length, 1, "b is restored, not booted");
  assert.match(b.snapshot_id ?? "", /^snap_/, "b depends on the template");
  assert.equal(await mainLog(b.id), `second-${b.id}\n`, "b's own main process ran once, and nothing of a's");
  assert.equal((await exec(d, b.id, ["busybox", "hostname"])).stdout, `${b.id}\n`);
  assert.equal((await exec(d, b.id, ["busybox", "cat", "/home/app/hello.txt"])).stdout, "hi from the image\n");
  assert.equal((await exec(d, b.id, ["sh", "-c", "test -e /home/app/after.txt; echo $?"])).stdout, "1\n", "nothing a wrote after its boot");
  assert.notEqual((await exec(d, b.id, rnd)).stdout, ra, "b draws its own random bytes");
  const guest = Number((await exec(d, b.id, ["busybox", "date", "+%s"])).stdout.trim());
  assert.ok(Math.abs(guest - Date.now() / 1000) <= 2, `b's clock is the host's (${guest})`);

  const c = await boot("tpl-c", "exec sleep 1000", 384);
  assert.equal(logLines("restored from a warm template", c.id).length, 0, "another shape boots cold");
  assert.equal(logLines("warm template captured", c.id).length, 1, "and gets its own template");

  const listed = await d.req("GET", "/snapshots");
  assert.deepEqual(JSON.parse(listed.body), [], "templates are not listed as snapshots");
  for (const m of [a, b, c]) assert.equal((await d.req("DELETE", `/machines/${m.id}`)).statusCode, 204);
  assert.equal((await readdir(join(d.dataDir, "snapshots"))).length, 2, "templates outlive their machines");
});
