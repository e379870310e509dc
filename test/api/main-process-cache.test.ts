/**
 * The main process's state on GET /machines comes from the daemon, not from a guest file read per
 * request: listing answers at once with the last known state even while a guest cannot answer
 * (its VMM frozen with SIGSTOP), and the state still follows the process (it exits: the machine
 * shows it without anyone reading its logs).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { vmSkipReason } from "./helpers.js";
import { body, exec, machineWhen, waitStatus, type ImageDaemon, type MachineJson, startBusyboxDaemon, type BusyboxDaemon } from "./images-helpers.js";

const skip = vmSkipReason();
let fx: BusyboxDaemon | undefined;
let d: ImageDaemon;
let busybox = "";

before(async () => {
  if (skip) return;
  fx = await startBusyboxDaemon();
  ({ d, busybox } = fx);
});

after(async () => {
  await fx?.close();
});

test("GET /machines shows the main process without asking the guest; its exit still shows", { skip: skip ?? false, timeout: 180_000 }, async () => {
  const r = await d.req("POST", "/machines", {
    name: "main-cache",
    vcpu_count: 1,
    mem_size_mib: 256,
    image: busybox,
    entrypoint: ["/bin/busybox", "sh", "-c"],
    cmd: ["while true; do /bin/busybox sleep 1; done"],
    start: true,
  });
  assert.equal(r.statusCode, 201, r.body);
  const id = body<MachineJson>(r).id;
  const running = await waitStatus(d, id, "running", 150_000);
  const seen = await machineWhen(d, id, (m) => m.main_process?.status === "running", 10_000, "the main process to run");
  const mainPid = seen.main_process!.pid!;
  assert.ok(mainPid > 1);

  // A guest that cannot answer (its VMM stopped, as a hung guest would be) changes nothing here.
  const vmmPid = body<{ pid: number }>(await d.req("GET", `/machines/${running.id}`)).pid;
  process.kill(vmmPid, "SIGSTOP");
  let listed: MachineJson[];
  let ms: number;
  try {
    const t0 = Date.now();
    const res = await d.req("GET", "/machines");
    ms = Date.now() - t0;
    assert.equal(res.statusCode, 200);
    listed = body<MachineJson[]>(res);
  } finally {
    process.kill(vmmPid, "SIGCONT");
  }
  console.log(`GET /machines with the guest frozen: ${ms} ms`);
  const m = listed.find((x) => x.id === id);
  assert.equal(m?.main_process?.status, "running", "the last known state, not a read that timed out");
  assert.equal(m?.main_process?.pid, mainPid);

  // The process ends (killed from inside): the machine shows it, with nobody reading its logs.
  const k = await exec(d, id, ["/bin/busybox", "kill", "-9", String(mainPid)]);
  assert.equal(k.exit_code, 0, k.stderr);
  const ended = await machineWhen(d, id, (x) => x.main_process?.status === "exited", 20_000, "the main process's exit");
  assert.equal(ended.main_process?.signal, 9);
  assert.equal((await d.req("DELETE", `/machines/${id}`)).statusCode, 204);
});
