/**
 * Volumes with image machines and warm templates on (real loopback registry, real VMs): the volume
 * is mounted before the image's main process starts (the process writes to it at once); a machine
 * with a volume is never captured as a warm template nor restored from one, while a machine of the
 * same image and shape without a volume is (so templates were on and would have been used).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { vmSkipReason } from "./helpers.js";
import { body, exec, startBusyboxDaemon, waitStatus, type BusyboxDaemon, type ImageDaemon, type MachineJson } from "./images-helpers.js";

const skip = vmSkipReason();
let fx: BusyboxDaemon | undefined;
let d: ImageDaemon;
let image = "";

before(async () => {
  if (skip) return;
  fx = await startBusyboxDaemon({ HYPERFLEET_WARM_TEMPLATES: "on" });
  ({ d, busybox: image } = fx);
});

after(async () => {
  await fx?.close();
});

const logLines = (msg: string, id: string) => d.logs().split("\n").filter((l) => l.includes(`"msg":"${msg}"`) && l.includes(id));

async function boot(name: string, volumes: unknown[]): Promise<MachineJson> {
  const cmd = ["/bin/busybox", "sh", "-c", "test -d /state && echo main-$(hostname) >> /state/main.txt; exec /bin/busybox sleep 1000"];
  const r = await d.req("POST", "/machines", { name, vcpu_count: 1, mem_size_mib: 256, image, cmd, start: true, volumes });
  assert.equal(r.statusCode, 201, r.body);
  return waitStatus(d, body<MachineJson>(r).id, "running", 120_000);
}

async function readState(id: string): Promise<string> {
  // The main process may still be starting: wait for its line.
  for (let i = 0; i < 50; i++) {
    const r = await exec(d, id, ["/bin/busybox", "cat", "/state/main.txt"]);
    if (r.exit_code === 0 && r.stdout.includes(`main-${id}`)) return r.stdout;
    await new Promise((res) => setTimeout(res, 100));
  }
  return (await exec(d, id, ["/bin/busybox", "cat", "/state/main.txt"])).stdout;
}

test("volumes are mounted before the main process; machines with volumes never capture nor use warm templates", { skip: skip ?? false, timeout: 300_000 }, async () => {
  assert.equal((await d.req("POST", "/volumes", { name: "img-state", size_mib: 64 })).statusCode, 201);
  const vol = [{ name: "img-state", mount: "/state" }];

  const a = await boot("vol-a", vol);
  assert.equal(await readState(a.id), `main-${a.id}\n`, "the main process wrote to the mounted volume");
  assert.equal(logLines("warm template captured", a.id).length, 0, "a machine with a volume is not captured");

  // The same image and shape without a volume: captured (templates are on).
  const b = await boot("no-vol-b", []);
  assert.equal(logLines("warm template captured", b.id).length, 1);

  assert.equal((await d.req("DELETE", `/machines/${a.id}`)).statusCode, 204);
  const c = await boot("vol-c", vol);
  assert.equal(logLines("restored from a warm template", c.id).length, 0, "a machine with a volume boots cold despite the template");
  assert.equal((c as MachineJson & { snapshot_id: string | null }).snapshot_id, null);
  assert.equal(await readState(c.id), `main-${a.id}\nmain-${c.id}\n`, "c's main process appended to what a's wrote");
});
