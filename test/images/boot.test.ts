/**
 * VMs boot from image disks: a Debian bookworm image (debootstrap, pushed to a loopback registry)
 * and the busybox image, each pulled and converted by the service, then booted with Machine (one
 * VM at a time) and checked from inside with the agent's exec. The disk stays untouched: each VM
 * writes to its own qcow2 overlay.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { isHyperfleetError } from "../../src/core/errors.js";
import { Machine } from "../../src/embed/machine.js";
import { buildBusyboxLayout, buildDebianLayout, push, workDir } from "./fixtures.js";
import { eventually, ls, openService } from "./harness.js";
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

/** PIDs of processes whose command line mentions `path` (our skopeo/umoci/mkfs children). */
async function processesUsing(path: string): Promise<string[]> {
  const found: string[] = [];
  for (const pid of await readdir("/proc").catch(() => [] as string[])) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    const cmd = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    if (cmd.includes(path)) found.push(`${pid}: ${cmd.replace(/\0/g, " ")}`);
  }
  return found;
}

test("a pull interrupted mid-download or mid-unpack leaves no entry, file or process", { timeout: 300_000 }, async () => {
  for (const when of ["downloading", "unpacking"] as const) {
    const ctl = new AbortController();
    let abortedAt = "";
    const pulling = svc.images.pull(`${registry.host}/library/debian:bookworm`, {
      signal: ctl.signal,
      onProgress: (p) => {
        // Mid-download: some bytes in, not all (the 250 ms poll may miss that window: then at the end).
        const mid = when === "downloading" ? p.phase === "downloading" && p.bytesDone > 0 : p.phase === "unpacking";
        if (mid && !ctl.signal.aborted) {
          abortedAt = `${p.phase} ${p.bytesDone}/${p.bytesTotal}`;
          // Let the tool get going first, so it is killed while working.
          setTimeout(() => ctl.abort(), when === "unpacking" ? 300 : 0);
        }
      },
    });
    await assert.rejects(pulling, (e: unknown) => isHyperfleetError(e, "IMAGE_PULL_ABORTED"));
    console.log(`aborted at ${abortedAt}`);
    await eventually(async () => (await ls(join(svc.cacheDir, "tmp"))).length === 0, "work dirs to go");
    await eventually(async () => (await processesUsing(svc.cacheDir)).length === 0, "no skopeo/umoci/mkfs left");
    await eventually(async () => (await ls(join(svc.cacheDir, "blobs/sha256"))).length === 0, "blobs to go");
    assert.deepEqual(await ls(join(svc.cacheDir, "disks")), []);
    assert.equal(svc.images.list().length, 0);
  }
});

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
