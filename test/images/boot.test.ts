/**
 * VMs boot from image disks: a Debian bookworm image (debootstrap, pushed to a loopback registry)
 * and the busybox image, each pulled and converted by the service, then booted with Machine (one
 * VM at a time) and checked from inside with the agent's exec. The disk stays untouched: each VM
 * writes to its own qcow2 overlay.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFile, rm } from "node:fs/promises";
import { Machine } from "../../src/lib/machine.js";
import { buildBusyboxLayout, buildDebianLayout, push, workDir } from "./fixtures.js";
import { openService } from "./harness.js";
import { startRegistry, type TestRegistry } from "./registry.js";
import { dataDir, leftoverQemu, tempRunDir } from "../integration/helpers.js";

let registry: TestRegistry;
let fixtureDir: string;
let svc: Awaited<ReturnType<typeof openService>>;

before(async () => {
  registry = await startRegistry();
  fixtureDir = await workDir();
  const layout = await buildBusyboxLayout(fixtureDir);
  await buildDebianLayout(fixtureDir);
  await push(layout, "bb", `${registry.host}/test/busybox:1`);
  await push(layout, "debian", `${registry.host}/library/debian:bookworm`);
  svc = await openService({ insecureRegistries: [registry.host] });
});

after(async () => {
  await svc?.cleanup();
  await registry?.stop();
  if (fixtureDir) await rm(fixtureDir, { recursive: true, force: true });
  assert.deepEqual(await leftoverQemu(), []);
});

/** Boots a VM on the disk, runs fn, destroys the VM whatever happens. */
async function withVm(diskPath: string, fn: (m: Machine) => Promise<void>): Promise<void> {
  const runDir = await tempRunDir();
  const m = new Machine({ vcpuCount: 1, memSizeMib: 256, rootfsPath: diskPath, dataDir: dataDir(), runDir });
  try {
    (await m.start()).unwrap();
    await fn(m);
  } finally {
    await m.destroy();
  }
}

const sha = async (p: string) => createHash("sha256").update(await readFile(p)).digest("hex");

test("a Debian image boots and runs its own programs", { timeout: 300_000 }, async () => {
  const img = await svc.images.pull(`${registry.host}/library/debian:bookworm`, { acquire: true });
  assert.deepEqual(img.config.cmd, ["/bin/bash"]);
  const before = await sha(img.diskPath);
  try {
    await withVm(img.diskPath, async (m) => {
      const os = (await m.exec(["cat", "/etc/os-release"])).unwrap();
      assert.equal(os.exitCode, 0);
      assert.match(os.stdout, /Debian GNU\/Linux 12 \(bookworm\)/);
      const who = (await m.exec(["/bin/bash", "-c", "id -u; stat -c '%U:%G %a' /etc/shadow /usr/bin/passwd; dpkg-query -W -f '${Package}\\n' bash"])).unwrap();
      // Ownership and modes from the layers survived: shadow is root:shadow 640, passwd setuid root.
      assert.equal(who.stdout, "0\nroot:shadow 640\nroot:root 4755\nbash\n", who.stderr);
      (await m.writeFile("/root/written-by-vm", "x")).unwrap();
    });
  } finally {
    await svc.images.release(img.digest);
  }
  assert.equal(await sha(img.diskPath), before, "the shared base disk is never written");
});

test("the busybox image boots; the image's files and ownership are there", { timeout: 120_000 }, async () => {
  const img = await svc.images.pull(`${registry.host}/test/busybox:1`, { acquire: true });
  try {
    await withVm(img.diskPath, async (m) => {
      const r = (await m.exec(["/bin/busybox", "sh", "-c", "cat /home/app/hello.txt; busybox stat -c '%u:%g' /home/app/hello.txt; test -e /etc/removed-me || echo whiteout-applied"])).unwrap();
      assert.equal(r.stdout, "hi from the image\n1000:1000\nwhiteout-applied\n", r.stderr);
    });
  } finally {
    await svc.images.release(img.digest);
  }
});
