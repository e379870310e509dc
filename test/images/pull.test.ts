/**
 * Pulling from a real registry on loopback, converting to ext4, and the cache around it: by tag and
 * digest, multi-arch indexes, one download for concurrent requests, the disk's contents (debugfs),
 * the image config, and every failure with its code and nothing left behind.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { isHyperfleetError, type ErrorCode } from "../../src/core/errors.js";
import type { PullProgress } from "../../src/images/types.js";
import { addArm64Variant, addIndex, buildBusyboxLayout, BUSYBOX_CONFIG, push, workDir } from "./fixtures.js";
import { countCalls, debugfsCat, debugfsStat, eventually, ls, openService } from "./harness.js";
import { freePort, startRegistry, type TestRegistry } from "./registry.js";

let registry: TestRegistry;
let fixtureDir: string;
let host: string;

before(async () => {
  registry = await startRegistry();
  host = registry.host;
  fixtureDir = await workDir();
  const layout = await buildBusyboxLayout(fixtureDir);
  await addArm64Variant(layout);
  await addIndex(layout, "multi", [
    { tag: "bb-arm64", architecture: "arm64" },
    { tag: "bb", architecture: "amd64" },
  ]);
  await addIndex(layout, "armonly", [{ tag: "bb-arm64", architecture: "arm64" }]);
  await push(layout, "bb", `${host}/test/busybox:1`);
  await push(layout, "multi", `${host}/test/multi:1`, { all: true });
  await push(layout, "armonly", `${host}/test/armonly:1`, { all: true });
  await push(layout, "bb-arm64", `${host}/test/arm64single:1`);
});

after(async () => {
  await registry?.stop();
  if (fixtureDir) await rm(fixtureDir, { recursive: true, force: true });
});

const rejectsWith = (p: Promise<unknown>, code: ErrorCode, msg?: RegExp) =>
  assert.rejects(p, (e: unknown) => {
    assert.ok(isHyperfleetError(e, code), `expected ${code}, got ${String((e as Error)?.stack ?? e)}`);
    if (msg) assert.match(e.message, msg);
    return true;
  });

/** Nothing of a failed pull is left: no entry, no disk, no work dir, no blob. */
async function assertClean(cacheDir: string): Promise<void> {
  await eventually(async () => (await ls(join(cacheDir, "tmp"))).length === 0, "work dirs to go");
  assert.deepEqual(await ls(join(cacheDir, "disks")), []);
  await eventually(async () => (await ls(join(cacheDir, "blobs/sha256"))).length === 0, "blobs to be collected");
  const index = await readFile(join(cacheDir, "index.json"), "utf8").catch(() => '{"entries":[]}');
  assert.deepEqual((JSON.parse(index) as { entries: unknown[] }).entries, []);
}

describe("pull from a loopback registry", () => {
  test("by tag: the disk holds the image and our agent, ownership and whiteouts right; config extracted", async () => {
    const { images, calls, cacheDir, cleanup } = await openService({ insecureRegistries: [host] });
    try {
      const progress: PullProgress[] = [];
      const img = await images.pull(`${host}/test/busybox:1`, { onProgress: (p) => progress.push(p) });
      assert.deepEqual(img.refs, [`${host}/test/busybox:1`]);
      assert.equal(img.resolvedRef, `${host}/test/busybox@${img.digest}`);
      assert.deepEqual(img.platform, { os: "linux", architecture: "amd64", variant: null });
      assert.equal((await stat(img.diskPath)).mode & 0o777, 0o444, "the shared base disk is read-only");

      // Progress: resolving, then downloads with byte and layer counts, then unpack/build, then done.
      const phases = [...new Set(progress.map((p) => p.phase))];
      assert.deepEqual(phases, ["resolving", "downloading", "unpacking", "building", "done"]);
      const last = progress.at(-1)!;
      assert.equal(last.layersTotal, 2);
      assert.equal(last.layersDone, 2);
      assert.ok(last.bytesTotal > 500_000 && last.bytesDone === last.bytesTotal, JSON.stringify(last));

      const agent = await debugfsStat(img.diskPath, "/sbin/hf-agent");
      assert.deepEqual({ type: agent?.type, mode: agent?.mode, uid: agent?.uid, gid: agent?.gid }, { type: "regular", mode: 0o755, uid: 0, gid: 0 });
      assert.equal((await debugfsStat(img.diskPath, "/bin/busybox"))?.uid, 0);
      const owned = await debugfsStat(img.diskPath, "/home/app/hello.txt");
      assert.deepEqual([owned?.uid, owned?.gid], [1000, 1000], "uids recorded in the layer survive unpack and mkfs");
      assert.equal(await debugfsStat(img.diskPath, "/etc/removed-me"), null, "layer 2's whiteout is applied");
      for (const dir of ["/proc", "/sys", "/dev", "/run", "/tmp"]) assert.equal((await debugfsStat(img.diskPath, dir))?.type, "directory", dir);
      assert.equal((await debugfsStat(img.diskPath, "/tmp"))?.mode, 0o1777);
      assert.equal(await debugfsCat(img.diskPath, "/etc/hostname"), "hyperfleet\n");
      assert.match(await debugfsCat(img.diskPath, "/etc/hosts"), /127\.0\.0\.1\tlocalhost/);
      assert.match(await debugfsCat(img.diskPath, "/etc/resolv.conf"), /^# Hyperfleet/);

      assert.deepEqual(img.config.cmd, BUSYBOX_CONFIG.cmd);
      assert.deepEqual(img.config.env, BUSYBOX_CONFIG.env);
      assert.equal(img.config.workingDir, BUSYBOX_CONFIG.workingDir);
      assert.equal(img.config.user, BUSYBOX_CONFIG.user);
      assert.deepEqual(img.config.exposedPorts, BUSYBOX_CONFIG.exposedPorts);
      assert.deepEqual(img.config.entrypoint, []);

      // Stored with the entry, and found again by a fresh service on the same dir without the network.
      const copies = countCalls(calls, "skopeo", "copy");
      assert.equal(copies, 1);
      assert.equal(countCalls(calls, "skopeo", "inspect"), 1);
      assert.equal(images.get(`${host}/test/busybox@${img.digest}`)?.key, img.key);
      const again = await images.pull(`${host}/test/busybox@${img.digest}`);
      assert.equal(again.diskPath, img.diskPath);
      assert.equal(countCalls(calls, "skopeo"), 2, "a cached digest needs no registry call");
      await images.close();
      const reopened = await openService({ cacheDir, insecureRegistries: [host] });
      try {
        const listed = reopened.images.list();
        assert.equal(listed.length, 1);
        assert.deepEqual(listed[0]!.config, img.config);
        assert.ok(listed[0]!.sizeBytes > 0 && listed[0]!.lastUsedAt instanceof Date);
        await reopened.images.pull(`${host}/test/busybox:1`);
        assert.equal(reopened.calls.length, 0, "a cached tag needs no registry call (policy if-missing)");
        await reopened.images.pull(`${host}/test/busybox:1`, { policy: "always" });
        assert.deepEqual(reopened.calls.map((c) => `${c.cmd} ${c.args.includes("inspect")}`), ["skopeo true"], "policy always asks for the manifest only");
      } finally {
        await reopened.cleanup();
      }
    } finally {
      await cleanup();
    }
  });

  test("concurrent requests for one uncached image run exactly one download and one conversion", async () => {
    const { images, calls, cleanup } = await openService({ insecureRegistries: [host] });
    try {
      // Three by tag and one through the multi-arch index, whose amd64 entry is the same manifest.
      const refs = [`${host}/test/busybox:1`, `${host}/test/busybox:1`, `${host}/test/busybox:1`, `${host}/test/multi:1`];
      const got = await Promise.all(refs.map((r) => images.pull(r)));
      assert.equal(new Set(got.map((g) => g.diskPath)).size, 1);
      assert.equal(countCalls(calls, "skopeo", "copy"), 1);
      assert.equal(countCalls(calls, "umoci"), 1);
      assert.equal(countCalls(calls, "mkfs.ext4"), 1);
      // One resolution per distinct reference, plus the platform manifest's fetch if the index's
      // resolution is the one that starts the download.
      assert.ok([2, 3].includes(countCalls(calls, "skopeo", "inspect")), `inspects: ${countCalls(calls, "skopeo", "inspect")}`);
      const multi = got[3]!;
      assert.equal(multi.indexDigests.length, 1, "the index that led to it is recorded");
      assert.equal(images.get(`${host}/test/multi@${multi.indexDigests[0]}`)?.key, multi.key, "and found by its digest");
      assert.deepEqual(images.list()[0]!.refs.sort(), [`${host}/test/busybox:1`, `${host}/test/multi:1`]);
    } finally {
      await cleanup();
    }
  });

  test("failures have clear codes and leave nothing behind", async () => {
    const { images, calls, cacheDir, cleanup } = await openService({ insecureRegistries: [host] });
    try {
      await rejectsWith(images.pull(`${host}/test/nope:1`), "IMAGE_NOT_FOUND", /does not exist/);
      await rejectsWith(images.pull(`${host}/test/busybox:2`), "IMAGE_NOT_FOUND");
      await rejectsWith(images.pull(`${host}/test/busybox@sha256:${"0".repeat(64)}`), "IMAGE_NOT_FOUND");
      await rejectsWith(images.pull(`${host}/test/armonly:1`), "IMAGE_PLATFORM_UNSUPPORTED", /linux\/arm64/);
      await rejectsWith(images.pull(`${host}/test/arm64single:1`), "IMAGE_PLATFORM_UNSUPPORTED", /linux\/arm64/);
      await rejectsWith(images.pull(`${host}/test/busybox:1`, { imageSizeMib: 8 }), "IMAGE_TOO_LARGE", /at least \d+ MiB/);
      await rejectsWith(images.pull("Not A Ref"), "INVALID_ARGUMENT");
      await rejectsWith(images.pull(`${host}/test/busybox:1`, { imageSizeMib: 7.5 }), "INVALID_ARGUMENT");
      const closed = await freePort();
      await rejectsWith(images.pull(`127.0.0.1:${closed}/test/busybox:1`), "IMAGE_REGISTRY_UNREACHABLE", /cannot be reached/);
      assert.equal(countCalls(calls, "skopeo", "copy"), 2, "only arm64single and the too-small pull got as far as downloading");
      await assertClean(cacheDir);
    } finally {
      await cleanup();
    }
    // The same registry, not declared plain-HTTP: skopeo tries TLS and we say what to configure.
    const strict = await openService();
    try {
      await rejectsWith(strict.images.pull(`${host}/test/busybox:1`), "IMAGE_REGISTRY_UNREACHABLE", /insecureRegistries/);
    } finally {
      await strict.cleanup();
    }
  });

  test("an aborted pull leaves no entry, disk, work dir or blob, and others can pull again", async () => {
    const { images, cacheDir, cleanup } = await openService({ insecureRegistries: [host] });
    try {
      for (const phase of ["downloading", "unpacking", "building"] as const) {
        const ctl = new AbortController();
        const pulling = images.pull(`${host}/test/busybox:1`, { signal: ctl.signal, onProgress: (p) => p.phase === phase && ctl.abort() });
        await rejectsWith(pulling, "IMAGE_PULL_ABORTED");
        await assertClean(cacheDir);
      }
      const img = await images.pull(`${host}/test/busybox:1`);
      assert.ok((await stat(img.diskPath)).isFile());
    } finally {
      await cleanup();
    }
  });

  test("an explicit imageSizeMib is its own disk of that size", async () => {
    const { images, cleanup } = await openService({ insecureRegistries: [host] });
    try {
      const auto = await images.pull(`${host}/test/busybox:1`);
      const sized = await images.pull(`${host}/test/busybox:1`, { imageSizeMib: 40 });
      assert.equal(sized.diskSizeMib, 40);
      assert.equal((await stat(sized.diskPath)).size, 40 << 20);
      assert.notEqual(sized.diskPath, auto.diskPath);
      assert.ok(auto.diskSizeMib >= 64 + 8, `auto size ${auto.diskSizeMib}`);
      assert.equal(images.get(`${host}/test/busybox:1`, { imageSizeMib: 40 })?.key, sized.key);
    } finally {
      await cleanup();
    }
  });

  test("a registry mirror is used for the registry it mirrors", async () => {
    // Nothing listens on the mirrored registry's port: the pull only works through the mirror.
    // (A loopback address, so a broken mirror setup never makes skopeo look up a real host.)
    const origin = `127.0.0.1:${await freePort()}`;
    const { images, cleanup } = await openService({ insecureRegistries: [host], mirrors: { [origin]: [host] } });
    try {
      const img = await images.pull(`${origin}/test/busybox:1`);
      assert.deepEqual(img.refs, [`${origin}/test/busybox:1`]);
      assert.deepEqual(img.config.cmd, BUSYBOX_CONFIG.cmd);
    } finally {
      await cleanup();
    }
  });
});
