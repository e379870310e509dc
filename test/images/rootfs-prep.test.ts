/**
 * Preparing an unpacked image on the real filesystem: hostile symlinks in the image never make us
 * write outside its rootfs, our files replace the image's, and the tree measurement counts hard
 * links once.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { link, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { resolveInRoot } from "../../src/images/in-root.js";
import { measureTree, prepareRootfs } from "../../src/images/rootfs-prep.js";

async function withDirs(fn: (root: string, outside: string) => Promise<void>): Promise<void> {
  const base = await mkdtemp(join(tmpdir(), "hf-rootfs-prep-"));
  try {
    const root = join(base, "rootfs");
    const outside = join(base, "outside");
    await mkdir(root);
    await mkdir(outside);
    await fn(root, outside);
  } finally {
    await rm(base, { recursive: true, force: true });
  }
}

test("symlinks resolve inside the root, as the guest sees them", async () => {
  await withDirs(async (root, outside) => {
    await mkdir(join(root, "usr/sbin"), { recursive: true });
    await symlink("/usr/sbin", join(root, "sbin")); // absolute: the guest's /usr/sbin, not the host's
    await symlink(`../../../../../..${outside}`, join(root, "up")); // ".." past the root stays at the root
    await symlink("loop", join(root, "loop"));
    assert.equal(await resolveInRoot(root, "sbin/hf-agent"), join(root, "usr/sbin/hf-agent"));
    assert.equal(await resolveInRoot(root, "/up/x"), join(root, outside, "x"));
    assert.equal(await resolveInRoot(root, "sbin", false), join(root, "sbin"));
    await assert.rejects(resolveInRoot(root, "loop/x"), /too many levels/);
  });
});

test("a hostile image cannot make us write outside its rootfs", async () => {
  await withDirs(async (root, outside) => {
    await symlink(outside, join(root, "sbin"));
    await symlink(outside, join(root, "etc"));
    await writeFile(join(outside, "hostname"), "host-file\n");
    await prepareRootfs(root, Buffer.from("agent"));
    assert.equal(await readFile(join(outside, "hostname"), "utf8"), "host-file\n", "the host's file is untouched");
    assert.deepEqual(await readdir(outside), ["hostname"], "nothing was added outside");
    assert.equal(await readFile(join(root, outside, "hf-agent"), "utf8"), "agent", "the agent went where the guest's /sbin points");
    assert.equal(await readFile(join(root, outside, "hostname"), "utf8"), "hyperfleet\n");
  });
});

test("our files replace the image's; mount points and minimal passwd are added", async () => {
  await withDirs(async (root) => {
    await mkdir(join(root, "etc"));
    await symlink("../run/systemd/resolve/stub-resolv.conf", join(root, "etc/resolv.conf"));
    await writeFile(join(root, "etc/hosts"), "1.2.3.4 build-host\n");
    await writeFile(join(root, "etc/passwd"), "root:x:0:0::/root:/bin/bash\napp:x:1000:1000::/app:/bin/sh\n");
    await prepareRootfs(root, Buffer.from("agent"));
    assert.ok((await lstat(join(root, "etc/resolv.conf"))).isFile(), "the image's symlink is replaced by our file");
    assert.match(await readFile(join(root, "etc/hosts"), "utf8"), /^127\.0\.0\.1\tlocalhost/);
    assert.match(await readFile(join(root, "etc/passwd"), "utf8"), /^app:/m, "an existing passwd is kept");
    assert.equal(await readFile(join(root, "etc/group"), "utf8"), "root:x:0:\n");
    assert.equal((await stat(join(root, "sbin/hf-agent"))).mode & 0o7777, 0o755);
    assert.equal((await stat(join(root, "tmp"))).mode & 0o7777, 0o1777);
    assert.equal((await stat(join(root, "proc"))).mode & 0o7777, 0o555);
    assert.equal(await readlink(join(root, "etc/resolv.conf")).catch(() => "not a link"), "not a link");
  });
});

test("measureTree counts 4 KiB blocks, hard links once, inline symlinks free", async () => {
  await withDirs(async (root) => {
    await writeFile(join(root, "a"), Buffer.alloc(5000));
    await link(join(root, "a"), join(root, "a2"));
    await symlink("a", join(root, "short"));
    await mkdir(join(root, "d"));
    const u = await measureTree(root);
    assert.deepEqual(u, { inodes: 4, dataBytes: 8192 + 4096 + 4096 });
  });
});
