/**
 * Machines from OCI images through the HTTP API, against a real loopback registry and real VMs:
 * two machines created at once from one uncached image share one pull, show its progress, boot
 * it with the agent as PID 1, run the image's Cmd as the main process (logs, follow, tail) and
 * give exec the image's Env, WorkingDir and User; overrides follow Docker's rules; a Debian image
 * boots too. At most two VMs run at a time.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { rm } from "node:fs/promises";
import { buildBusyboxLayout, buildDebianLayout, push, workDir } from "../images/fixtures.js";
import { startRegistry, type TestRegistry } from "../images/registry.js";
import { AUTH, until, vmSkipReason } from "./helpers.js";
import { body, exec, machineWhen, startImageDaemon, waitStatus, type ImageDaemon, type MachineJson } from "./images-helpers.js";

const skip = vmSkipReason();
let registry: TestRegistry;
let fixtures: string;
let d: ImageDaemon;
let busybox = "";
let debian = "";

before(async () => {
  if (skip) return;
  registry = await startRegistry();
  fixtures = await workDir();
  const layout = await buildBusyboxLayout(fixtures);
  await buildDebianLayout(fixtures);
  busybox = `${registry.host}/test/busybox:1`;
  debian = `${registry.host}/library/debian:bookworm`;
  await push(layout, "bb", busybox);
  await push(layout, "debian", debian);
  d = await startImageDaemon({ HYPERFLEET_INSECURE_REGISTRIES: registry.host, HYPERFLEET_MAX_CONCURRENT_BOOTS: "2" });
});

after(async () => {
  await d?.close();
  await registry?.stop();
  if (fixtures) await rm(fixtures, { recursive: true, force: true });
});

async function create(name: string, extra: Record<string, unknown>): Promise<MachineJson> {
  const r = await d.req("POST", "/machines", { name, vcpu_count: 1, mem_size_mib: 256, ...extra });
  assert.equal(r.statusCode, 201, r.body);
  return body<MachineJson>(r);
}

async function logs(id: string, query = ""): Promise<string> {
  const r = await d.req("GET", `/machines/${id}/logs${query}`);
  assert.equal(r.statusCode, 200, r.body);
  assert.match(String(r.headers["content-type"]), /^text\/plain/);
  return r.body;
}

/** Lines of the daemon log with this message. */
const logLines = (msg: string) => d.logs().split("\n").filter((l) => l.includes(`"msg":"${msg}"`));

test("two machines from one uncached image: one pull with progress, both boot, the image's config applies", { skip: skip ?? false, timeout: 240_000 }, async () => {
  const [a, b] = await Promise.all([create("bb-a", { image: busybox, start: true }), create("bb-b", { image: busybox, start: true })]);
  for (const m of [a!, b!]) {
    assert.equal(m.status, "starting");
    assert.equal(m.image_ref, busybox);
    assert.equal(m.image_digest, null);
    assert.equal(m.rootfs_path, null, "the root disk is the image's, known once pulled");
    assert.equal(m.image_pull?.status, "pulling");
  }
  const phases = new Set<string>();
  const pulled = await machineWhen(d, a!.id, (m) => (phases.add(m.image_pull?.phase ?? "?"), m.image_pull?.status !== "pulling"), 120_000, "the pull to end");
  assert.equal(pulled.image_pull?.status, "done", JSON.stringify(pulled.image_pull));
  assert.equal(pulled.image_pull?.layers_total, 2);
  assert.equal(pulled.image_pull?.layers_done, 2);
  assert.ok(pulled.image_pull!.bytes_total > 0 && pulled.image_pull!.bytes_done === pulled.image_pull!.bytes_total);
  assert.match(pulled.image_digest ?? "", /^sha256:[0-9a-f]{64}$/);
  assert.match(pulled.rootfs_path ?? "", /\/images\/disks\/.*\.ext4$/);

  const [ra, rb] = [await waitStatus(d, a!.id, "running", 120_000), await waitStatus(d, b!.id, "running", 120_000)];
  assert.equal(ra.image_digest, rb.image_digest);
  assert.equal(logLines("image pulled and converted").length, 1, "one download and conversion for both machines");
  const progress = logLines("image pull progress").filter((l) => l.includes(a!.id));
  assert.ok(progress.length >= 1, "progress is logged with the machine id");
  console.log(`phases seen while polling: ${[...phases].join(", ")}`);

  // exec with no overrides runs as the image says: Env, WorkingDir, User.
  const r = await exec(d, a!.id, ["/bin/busybox", "sh", "-c", 'echo "$GREETING"; echo "$PATH"; /bin/busybox pwd; /bin/busybox id -u; /bin/busybox id -g']);
  assert.equal(r.stdout, "hello world\n/usr/sbin:/usr/bin:/sbin:/bin\n/home/app\n1000\n1000\n", r.stderr);
  // The request's values win.
  const o = await exec(d, a!.id, ["/bin/busybox", "sh", "-c", 'echo "$GREETING"; /bin/busybox pwd; /bin/busybox id -u'], { env: { GREETING: "hi" }, cwd: "/", user: "0" });
  assert.equal(o.stdout, "hi\n/\n0\n");
  const os = await exec(d, a!.id, ["/bin/busybox", "cat", "/etc/os-release", "/proc/1/comm"]);
  assert.equal(os.stdout, 'NAME="hf-busybox"\nID=hf-busybox\nhf-agent\n', "the image is the root filesystem, our agent is PID 1");

  // The image's Cmd ran as the main process: its output is in the logs, its exit on the machine.
  const m = await machineWhen(d, a!.id, (x) => x.main_process?.status === "exited", 20_000, "the main process to exit");
  assert.equal(m.main_process?.exit_code, 0);
  assert.equal(m.main_process?.signal, null);
  assert.equal(m.main_process?.error, null);
  const out = await logs(a!.id);
  assert.match(out, /^hello\n\[hyperfleet\] process \d+ exited with code 0\n$/);
  // follow on an exited process sends everything and ends.
  assert.equal(await logs(a!.id, "?follow=true"), out);
  assert.equal(await logs(a!.id, "?tail=1"), out.split("\n").slice(1).join("\n"));

  for (const id of [a!.id, b!.id]) assert.equal((await d.req("DELETE", `/machines/${id}`)).statusCode, 204);
});

test("overrides (Docker rules); logs followed over HTTP until the client leaves or the VM goes; the main process after every boot", { skip: skip ?? false, timeout: 120_000 }, async () => {
  const ticker = 'i=0; while true; do echo "tick $i in $(/bin/busybox pwd) as $(/bin/busybox id -u)"; i=$((i+1)); /bin/busybox sleep 0.3; done';
  const m = await create("bb-ticker", { image: busybox, entrypoint: ["/bin/busybox", "sh", "-c"], cmd: [ticker], workdir: "/srv/app", user: "0", env: { EXTRA: "x" }, start: true });
  await machineWhen(d, m.id, (x) => x.image_pull?.status === "done", 5_000, "the cached image to be taken (no download)");
  await waitStatus(d, m.id, "running", 60_000);
  const e = await exec(d, m.id, ["/bin/busybox", "sh", "-c", 'echo "$GREETING/$EXTRA"; /bin/busybox pwd; /bin/busybox id -u']);
  assert.equal(e.stdout, "hello world/x\n/srv/app\n0\n", "overrides apply to exec too (the missing workdir was created); machine env on top of the image's");
  const running = body<MachineJson>(await d.req("GET", `/machines/${m.id}`));
  assert.equal(running.main_process?.status, "running");
  assert.ok((running.main_process?.pid ?? 0) > 1);

  // Follow: a couple of chunks arrive as they are written, then the client disconnects.
  const ac = new AbortController();
  const res = await fetch(`${d.url}/machines/${m.id}/logs?follow=true`, { headers: AUTH, signal: ac.signal });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("transfer-encoding"), "chunked");
  const reader = res.body!.getReader();
  let text = "";
  let chunks = 0;
  while (!/tick 3 /.test(text)) {
    const { value, done } = await reader.read();
    assert.ok(!done, "the stream stays open while the process runs");
    text += Buffer.from(value).toString("utf8");
    chunks++;
  }
  ac.abort();
  assert.ok(chunks >= 2, `output arrived in pieces (${chunks})`);
  assert.match(text, /^tick 0 in \/srv\/app as 0\ntick 1 in \/srv\/app as 0\n/);

  // tail + follow, then the VM goes away (a restart): the stream ends by itself.
  const res2 = await fetch(`${d.url}/machines/${m.id}/logs?follow=true&tail=1`, { headers: AUTH });
  const reader2 = res2.body!.getReader();
  const first = Buffer.from((await reader2.read()).value!).toString("utf8");
  assert.match(first, /^tick \d+ in \/srv\/app as 0\n$/, "tail=1 starts with the last line");
  assert.equal((await d.req("POST", `/machines/${m.id}/restart`)).statusCode, 202);
  const ended = (async () => {
    for (;;) if ((await reader2.read()).done) return true;
  })();
  assert.equal(await Promise.race([ended, new Promise((r) => setTimeout(() => r(false), 20_000))]), true, "the follow ends when the VM stops");

  // The new boot started the main process again; the log (on the machine's disk) keeps the first run's end.
  await waitStatus(d, m.id, "running", 60_000);
  await machineWhen(d, m.id, (x) => x.main_process?.status === "running", 10_000, "the main process after the restart");
  const again = await until(async () => {
    const t = await logs(m.id);
    return /was killed by signal 15\n(.|\n)*tick 1 /.test(t) ? t : null;
  }, 10_000, "the second run's output");
  assert.match(again, /^tick 0 in \/srv\/app as 0\n/);

  assert.equal((await d.req("POST", `/machines/${m.id}/stop`)).statusCode, 202);
  await waitStatus(d, m.id, "stopped", 30_000);
  assert.equal((await d.req("GET", `/machines/${m.id}/logs`)).statusCode, 409, "logs need a running machine");
  assert.equal(body<MachineJson>(await d.req("GET", `/machines/${m.id}`)).main_process, null);
  assert.equal((await d.req("DELETE", `/machines/${m.id}`)).statusCode, 204);
  assert.ok(!existsSync(`${d.dataDir}/machines/${m.id}`));
});

test("a guest cannot make the daemon read without bound: a huge main log gives its last 32 MiB, an endless status file is ignored", { skip: skip ?? false, timeout: 120_000 }, async () => {
  const m = await create("bb-hostile", { image: busybox, start: true });
  await waitStatus(d, m.id, "running", 60_000);
  await machineWhen(d, m.id, (x) => x.main_process?.status === "exited", 20_000, "the main process to exit");
  // A sparse 1 GiB log with a last line, as root inside the guest.
  const grow = 'cd /var/log/hyperfleet && /bin/busybox dd if=/dev/zero of=main.log bs=1 count=0 seek=1073741824 2>/dev/null && echo last-line >> main.log';
  assert.equal((await exec(d, m.id, ["/bin/busybox", "sh", "-c", grow], { user: "0" })).exit_code, 0);
  const r = await d.req("GET", `/machines/${m.id}/logs`);
  assert.equal(r.statusCode, 200);
  assert.equal(r.rawPayload.length, 32 << 20, "the last 32 MiB of the log, not all of it");
  assert.ok(r.body.endsWith("last-line\n"));
  // The status file now points at something endless: the machine's view leaves the main process out.
  const swap = "cd /var/log/hyperfleet && /bin/busybox ln -sf /proc/self/pagemap main.log.status";
  assert.equal((await exec(d, m.id, ["/bin/busybox", "sh", "-c", swap], { user: "0" })).exit_code, 0);
  const view = await d.req("GET", `/machines/${m.id}`);
  assert.equal(view.statusCode, 200);
  assert.equal(body<MachineJson>(view).main_process, null);
  assert.equal((await d.req("DELETE", `/machines/${m.id}`)).statusCode, 204);
});

test("a Debian image boots: its own programs, its Cmd, Docker's defaults for what it does not set", { skip: skip ?? false, timeout: 600_000 }, async () => {
  const m = await create("debian", { image: debian, start: true });
  const phases = new Set<string>();
  await machineWhen(d, m.id, (x) => (phases.add(x.image_pull?.phase ?? "?"), x.image_pull?.status !== "pulling"), 480_000, "the Debian pull");
  console.log(`Debian pull phases seen: ${[...phases].join(", ")}`);
  await waitStatus(d, m.id, "running", 120_000);
  const os = await exec(d, m.id, ["cat", "/etc/os-release"]);
  assert.match(os.stdout, /Debian GNU\/Linux 12 \(bookworm\)/);
  const who = await exec(d, m.id, ["/bin/bash", "-c", 'echo "$PATH"; pwd; id -u; cat /proc/1/comm']);
  assert.equal(who.stdout, "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n/\n0\nhf-agent\n");
  // Cmd is /bin/bash: with stdin at /dev/null it exits at once, 0.
  const x = await machineWhen(d, m.id, (y) => y.main_process?.status === "exited", 20_000, "bash to exit");
  assert.equal(x.main_process?.exit_code, 0);
  assert.equal((await d.req("DELETE", `/machines/${m.id}`)).statusCode, 204);
});

test("the daemon logged no errors (followers ended quietly, no failed steps)", { skip: skip ?? false }, () => {
  const errors = d.logs().split("\n").filter((l) => /"level":(50|60)/.test(l));
  assert.deepEqual(errors, []);
});
