import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, readlink, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initramfsTree, MODULE_LIST_PATH } from "../../src/assets/initramfs-layout.js";
import { initramfsFor, loadGuestAssets, type GuestAssets } from "../../src/assets/manifest.js";
import { writeManifest } from "../../src/assets/manifest.js";
import { mkfsArgs, rootfsTree, uuidFromHex } from "../../src/assets/rootfs-layout.js";
import { materializeTree } from "../../src/assets/rootfs.js";
import { normalizeTree, type TreeEntry } from "../../src/assets/tree.js";
import { isHyperfleetError } from "../../src/core/errors.js";

const byPath = (entries: TreeEntry[]) => new Map(normalizeTree(entries).map((e) => [e.path, e]));

test("initramfs: /init, the module list in order, modules under the release, /dev/console", () => {
  const t = byPath(
    initramfsTree({
      init: Buffer.from("ELF"),
      kernelRelease: "6.1.0-56-cloud-amd64",
      modules: [
        { path: "kernel/drivers/virtio/virtio_ring.ko", data: Buffer.from("a") },
        { path: "kernel/drivers/virtio/virtio.ko", data: Buffer.from("b") },
      ],
    }),
  );
  assert.deepEqual(t.get("init"), { type: "file", path: "init", mode: 0o755, data: Buffer.from("ELF") });
  const list = t.get(MODULE_LIST_PATH);
  assert.ok(list?.type === "file");
  assert.equal(Buffer.from(list.data).toString(), "kernel/drivers/virtio/virtio_ring.ko\nkernel/drivers/virtio/virtio.ko\n");
  assert.ok(t.has("lib/modules/6.1.0-56-cloud-amd64/kernel/drivers/virtio/virtio.ko"));
  assert.deepEqual(t.get("dev/console"), { type: "chardev", path: "dev/console", mode: 0o600, major: 5, minor: 1 });
  for (const dir of ["proc", "sys", "newroot"]) assert.equal(t.get(dir)?.type, "dir");
});

test("initramfs: a module list with conditions; each module file once; no entry for a module not shipped", () => {
  const ring = { path: "kernel/drivers/virtio/virtio_ring.ko", data: Buffer.from("a") };
  const blk = { path: "kernel/drivers/block/virtio_blk.ko", data: Buffer.from("b") };
  const input = {
    init: Buffer.from("ELF"),
    kernelRelease: "6.1.0-56-cloud-amd64",
    modules: [ring, blk],
    moduleList: [
      { path: ring.path, when: { kind: "always" } as const },
      { path: blk.path, when: { kind: "virtio", deviceId: 2 } as const },
      { path: blk.path, when: { kind: "pci" } as const, late: true },
    ],
  };
  const t = byPath(initramfsTree(input));
  const list = t.get(MODULE_LIST_PATH);
  assert.ok(list?.type === "file");
  assert.equal(
    Buffer.from(list.data).toString(),
    "kernel/drivers/virtio/virtio_ring.ko\nvirtio:0x0002 kernel/drivers/block/virtio_blk.ko\nlate pci kernel/drivers/block/virtio_blk.ko\n",
  );
  assert.ok(t.has("lib/modules/6.1.0-56-cloud-amd64/kernel/drivers/block/virtio_blk.ko"));
  assert.throws(() => initramfsTree({ ...input, modules: [ring] }), /virtio_blk\.ko, which is not in the initramfs/);
});

test("rootfs: busybox with applet links, the agent, /etc and mount points", () => {
  const t = byPath(rootfsTree({ busybox: Buffer.from("bb"), applets: ["bin/sh", "usr/bin/env", "linuxrc", "bin/busybox"], agent: Buffer.from("agent") }));
  assert.deepEqual(t.get("bin/sh"), { type: "symlink", path: "bin/sh", target: "/bin/busybox" });
  assert.equal(t.get("bin/busybox")?.type, "file", "an applet never replaces a file of ours");
  assert.equal(t.has("linuxrc"), false);
  assert.deepEqual(t.get("sbin/hf-agent"), { type: "file", path: "sbin/hf-agent", mode: 0o755, data: Buffer.from("agent") });
  const passwd = t.get("etc/passwd");
  assert.ok(passwd?.type === "file" && Buffer.from(passwd.data).toString().startsWith("root:x:0:0:"));
  assert.equal((t.get("tmp") as { mode: number }).mode, 0o1777);
  for (const dir of ["proc", "sys", "dev", "run", "root"]) assert.equal(t.get(dir)?.type, "dir", dir);
});

test("rootfs: the vsock test tool goes to /usr/bin/hf-vsock-pipe when given, an applet of that name never replaces it", () => {
  const base = { busybox: Buffer.from("bb"), applets: ["usr/bin/hf-vsock-pipe", "bin/sh"], agent: Buffer.from("agent") };
  const t = byPath(rootfsTree({ ...base, vsockPipe: Buffer.from("pipe") }));
  assert.deepEqual(t.get("usr/bin/hf-vsock-pipe"), { type: "file", path: "usr/bin/hf-vsock-pipe", mode: 0o755, data: Buffer.from("pipe") });
  assert.equal(byPath(rootfsTree(base)).get("usr/bin/hf-vsock-pipe")?.type, "symlink", "absent without it (here the applet's link)");
});

test("rootfs: mkfs.ext4 arguments", () => {
  assert.deepEqual(mkfsArgs({ image: "/o/x.ext4", sourceDir: "/w/root", sizeMiB: 512, uuid: "u" }), [
    "-q", "-F", "-T", "default", "-L", "hf-root", "-U", "u",
    "-E", "root_owner=0:0,lazy_itable_init=0,lazy_journal_init=0", "-d", "/w/root", "/o/x.ext4", "512M",
  ]);
  assert.equal(uuidFromHex("0123456789abcdef0123456789abcdefffff"), "01234567-89ab-cdef-0123-456789abcdef");
});

test("rootfs: a tree is written with exact modes, whatever the umask", async () => {
  const dir = await mkdtemp(join(tmpdir(), "hf-assets-"));
  try {
    await materializeTree(rootfsTree({ busybox: Buffer.from("bb"), applets: ["bin/sh"], agent: Buffer.from("agent") }), dir);
    assert.equal((await stat(join(dir, "tmp"))).mode & 0o7777, 0o1777);
    assert.equal((await stat(join(dir, "root"))).mode & 0o7777, 0o700);
    assert.equal((await stat(join(dir, "sbin/hf-agent"))).mode & 0o7777, 0o755);
    assert.equal(await readlink(join(dir, "bin/sh")), "/bin/busybox");
    assert.equal(await readFile(join(dir, "etc/hostname"), "utf8"), "hyperfleet\n");
    await assert.rejects(materializeTree([{ type: "chardev", path: "c", mode: 0o600, major: 5, minor: 1 }], dir), /device node/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("manifest: missing, stale and valid", async () => {
  const dir = await mkdtemp(join(tmpdir(), "hf-assets-"));
  try {
    const isMissing = (e: unknown) => isHyperfleetError(e, "GUEST_ASSETS_MISSING") && /npm run setup/.test(e.message);
    await assert.rejects(loadGuestAssets(dir), isMissing);
    const file = (n: string) => join(dir, n);
    const assets: GuestAssets = {
      kernelVersion: "6.1.0-56-cloud-amd64",
      kernelPackage: { name: "linux-image-6.1.0-56-cloud-amd64", version: "6.1.192-2" },
      bzImage: file("bz"),
      vmlinux: file("vmlinux"),
      initramfs: file("i.cpio"),
      initramfsBasic: file("b.cpio"),
      rootfs: file("r.ext4"),
      modules: ["virtio_ring"],
    };
    await writeManifest(dir, assets);
    await assert.rejects(loadGuestAssets(dir), (e) => isMissing(e) && /is gone/.test((e as Error).message));
    for (const f of ["bz", "vmlinux", "i.cpio", "r.ext4"]) await writeFile(file(f), "");
    await assert.rejects(loadGuestAssets(dir), (e) => isMissing(e) && /b\.cpio is gone/.test((e as Error).message));
    await writeFile(file("b.cpio"), "");
    assert.deepEqual(await loadGuestAssets(dir), assets);
    await writeFile(file("assets.json"), JSON.stringify({ schema: 99 }));
    await assert.rejects(loadGuestAssets(dir), (e) => isMissing(e) && /schema 99/.test((e as Error).message));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("initramfsFor: the basic initramfs only for a VM without NICs or vsock", () => {
  const assets = { initramfs: "/d/full.cpio", initramfsBasic: "/d/basic.cpio" };
  assert.equal(initramfsFor(assets, { nics: 0, vsock: false }), "/d/basic.cpio");
  assert.equal(initramfsFor(assets, { nics: 1, vsock: false }), "/d/full.cpio");
  assert.equal(initramfsFor(assets, { nics: 0, vsock: true }), "/d/full.cpio");
});
