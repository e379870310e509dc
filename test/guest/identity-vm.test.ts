/**
 * IDENTITY applied for real: hf-agent as PID 1 of a QEMU microvm (TCG), driven by the host's
 * AgentClient.setIdentity over the virtio-serial port. One boot for every case. What needs two
 * clones of one snapshot (their /dev/urandom bytes differ) is the snapshot tests' job; here the
 * entropy part must succeed, which means both ioctls did (RNDADDENTROPY and RNDRESEEDCRNG).
 * Skipped where QEMU, a kernel with virtio modules or a static busybox are missing.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, test } from "node:test";
import { AgentClient } from "../../src/agent/client.js";
import { isHyperfleetError } from "../../src/core/errors.js";
import { buildAgent, cleanupAll, connectSocket } from "./harness.js";
import { Vm, vmPrerequisites } from "./vm.js";

const missing = vmPrerequisites();
const opts = { skip: missing ?? false, timeout: 120_000 };
let vm: Vm;
let agent: AgentClient;

before(async () => {
  if (missing) return;
  buildAgent();
  vm = await Vm.boot("idvm");
  // A fresh VM: its first host connection gets READY, so one attempt with a boot-sized deadline.
  // connectSocket: QEMU's socket file appears at bind(), a moment before it listens.
  agent = await AgentClient.connect(await connectSocket(vm.agentSocket), { timeoutMs: 60_000 });
});
after(async () => {
  agent?.close();
  await vm?.kill();
  await cleanupAll();
});

async function sh(script: string): Promise<string> {
  const r = await agent.exec(["sh", "-c", script], { timeoutMs: 10_000, maxOutputBytes: 64 * 1024 });
  assert.equal(r.exitCode, 0, r.stderr.toString());
  return r.stdout.toString();
}

test("/etc/hostname and /etc/hosts are tmpfs files bound over the root's at boot, /etc/hostname naming the boot's hostname", opts, async () => {
  // Why: IDENTITY renaming files into place on the root disk cost a clone ~40 ms of TCG translation.
  const mounts = await sh("cat /proc/mounts");
  for (const f of ["/etc/hostname", "/etc/hosts"]) assert.match(mounts, new RegExp(` ${f} tmpfs `), `${f} is a tmpfs mount:\n${mounts}`);
  assert.equal(await sh("cat /etc/hostname /etc/hosts"), "idvm\n127.0.0.1\tlocalhost\n127.0.1.1\thyperfleet\n");
});

test("HOSTNAME: `hostname`, /etc/hostname and the /etc/hosts lines naming the old name agree", opts, async () => {
  assert.equal(await sh("hostname"), "idvm\n");
  // The files API writes onto the bound /etc/hosts in place (a rename onto a mount point is EBUSY).
  // The address line names the old hostname twice over (alias, comment): only the name field changes.
  await agent.writeFile("/etc/hosts", Buffer.from("127.0.0.1\tlocalhost\n10.0.0.2\tidvm idvm.local # idvm\n"));
  await agent.setIdentity({ hostname: "clone-abc" });
  assert.equal(await sh("hostname; cat /etc/hostname"), "clone-abc\nclone-abc\n");
  assert.equal(await sh("cat /etc/hosts"), "127.0.0.1\tlocalhost\n10.0.0.2\tclone-abc idvm.local # idvm\n");

  // A file that does not name the current hostname gets a line for the new one.
  await agent.writeFile("/etc/hosts", Buffer.from("127.0.0.1\tlocalhost"));
  await agent.setIdentity({ hostname: "clone-def" });
  assert.equal(await sh("hostname; cat /etc/hosts"), "clone-def\n127.0.0.1\tlocalhost\n127.0.1.1\tclone-def\n");

  // A bad name is refused by the host before it is sent, and the guest keeps its name.
  await assert.rejects(agent.setIdentity({ hostname: "bad name" }), (e) => isHyperfleetError(e, "INVALID_ARGUMENT"));
  assert.equal(await sh("hostname"), "clone-def\n");
});

test("TIME_NS: the guest's clock reads the time it was set to", opts, async (t) => {
  const target = Date.now() + 3_600_000;
  await agent.setIdentity({ timeNs: BigInt(target) * 1_000_000n });
  const guest = Number((await sh("date +%s")).trim());
  const expected = target / 1000;
  t.diagnostic(`guest clock ${(guest - expected).toFixed(1)} s from the time set (+1 h)`);
  // `date +%s` truncates, and the exec takes a moment under TCG: a few seconds either way.
  assert.ok(guest >= Math.floor(expected) - 1 && guest <= expected + 5, `guest ${guest} vs set ${expected.toFixed(1)}`);
  // Back to the host's time, as resume does, so the other cases see a sane clock.
  await agent.setIdentity({ timeNs: BigInt(Date.now()) * 1_000_000n });
  const back = Number((await sh("date +%s")).trim());
  assert.ok(Math.abs(back - Date.now() / 1000) <= 5, `guest ${back} after setting it back`);
});

test("ENTROPY: credited and the CRNG reseeded (both ioctls succeed); all three parts in one request", opts, async (t) => {
  await agent.setIdentity({ entropy: randomBytes(64) });
  // 6.1 caps entropy_avail at the pool's 256 bits; it reads 256 once the CRNG is initialised.
  const avail = Number((await sh("cat /proc/sys/kernel/random/entropy_avail")).trim());
  t.diagnostic(`entropy_avail ${avail}`);
  assert.equal(avail, 256, "the CRNG is initialised (a reseed before that answers ENODATA)");
  await agent.setIdentity({ entropy: randomBytes(16) });

  const now = Date.now();
  await agent.setIdentity({ entropy: randomBytes(512), timeNs: BigInt(now) * 1_000_000n, hostname: "clone-all" });
  const [name, secs] = (await sh("hostname; date +%s")).trim().split("\n");
  assert.equal(name, "clone-all");
  assert.ok(Math.abs(Number(secs) - Date.now() / 1000) <= 5);
});
