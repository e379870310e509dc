/**
 * The cache's own rules against a real registry: LRU eviction within the size limit that never
 * touches an image in use, remove, startup recovery (stale work dirs, orphan disks, stray blobs,
 * a corrupt index), and a full disk (a small tmpfs as the cache dir).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, writeFile, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isHyperfleetError, type ErrorCode } from "../../src/core/errors.js";
import { addLabelVariants, addZerosImage, buildBusyboxLayout, push, sh, workDir } from "./fixtures.js";
import { eventually, ls, openService } from "./harness.js";
import { startRegistry, type TestRegistry } from "./registry.js";

let registry: TestRegistry;
let fixtureDir: string;
let host: string;

before(async () => {
  registry = await startRegistry();
  host = registry.host;
  fixtureDir = await workDir();
  const layout = await buildBusyboxLayout(fixtureDir);
  for (const tag of await addLabelVariants(layout, 4)) await push(layout, tag, `${host}/test/evict:${tag}`);
  await addZerosImage(layout, fixtureDir);
  await push(layout, "bb", `${host}/test/busybox:1`);
  await push(layout, "zeros", `${host}/test/zeros:1`);
});

after(async () => {
  await registry?.stop();
  if (fixtureDir) await rm(fixtureDir, { recursive: true, force: true });
});

const isCode = (code: ErrorCode) => (e: unknown) => {
  assert.ok(isHyperfleetError(e, code), `expected ${code}, got ${String((e as Error)?.stack ?? e)}`);
  return true;
};

describe("image cache", () => {
  test("LRU eviction keeps the cache within its limit and never evicts an image in use", async () => {
    // One image's footprint, to set a limit that holds two images but not three.
    const probe = await openService({ insecureRegistries: [host] });
    let one: number;
    try {
      await probe.images.pull(`${host}/test/evict:ev1`);
      one = probe.images.cacheBytes();
    } finally {
      await probe.cleanup();
    }
    const busy = new Set<string>();
    const { images, cacheDir, cleanup } = await openService({ insecureRegistries: [host], maxCacheSize: Math.floor(2.5 * one), isInUse: (d) => busy.has(d) });
    try {
      const keys = () => images.list().map((i) => i.refs[0]!.split(":").at(-1)).sort();
      const ev1 = await images.pull(`${host}/test/evict:ev1`, { acquire: true });
      const ev2 = await images.pull(`${host}/test/evict:ev2`);
      assert.deepEqual(keys(), ["ev1", "ev2"]);
      assert.ok(images.cacheBytes() < 2 * one, "the two images share their layers");
      const ev3 = await images.pull(`${host}/test/evict:ev3`);
      assert.deepEqual(keys(), ["ev1", "ev3"], "ev2 (least recently used and unused) went; ev1 is in use");
      await assert.rejects(stat(ev2.diskPath));
      assert.ok(images.cacheBytes() <= 2.5 * one);
      assert.ok(images.list().find((i) => i.digest === ev1.digest)?.inUse);

      busy.add(ev3.digest); // a machine record points at ev3 (the isInUse callback)
      await images.release(ev1.digest);
      assert.deepEqual(keys(), ["ev1", "ev3"], "releasing needs no eviction while the cache fits");
      await images.pull(`${host}/test/evict:ev4`);
      assert.deepEqual(keys(), ["ev3", "ev4"], "ev1, now unused and least recently used, went; ev3 is in use");
      await assert.rejects(stat(ev1.diskPath));

      // The layers shared with the remaining images stayed; ev1's and ev2's own manifest and config went.
      const blobs = await ls(join(cacheDir, "blobs/sha256"));
      assert.equal(blobs.length, 2 + 2 * 2, `blobs: ${blobs.join(" ")}`);

      await assert.rejects(images.remove(`${host}/test/evict:ev3`), isCode("IMAGE_IN_USE"));
      busy.delete(ev3.digest);
      await images.remove(`${host}/test/evict:ev3`);
      assert.deepEqual(keys(), ["ev4"]);
      await assert.rejects(images.remove(`${host}/test/evict:ev3`), isCode("IMAGE_NOT_CACHED"));
      assert.throws(() => images.acquire(ev3.digest), isCode("IMAGE_NOT_CACHED"));
      assert.equal((await ls(join(cacheDir, "blobs/sha256"))).length, 4);
    } finally {
      await cleanup();
    }
  });

  test("startup removes what interrupted pulls left and sets a corrupt index aside", async () => {
    const { images, cacheDir, cleanup } = await openService({ insecureRegistries: [host] });
    try {
      const img = await images.pull(`${host}/test/busybox:1`);
      await images.close();
      // What a daemon killed mid-pull leaves: its work dir (dead PID), a disk never recorded, a blob.
      await mkdir(join(cacheDir, "tmp/pull-999999-abcdef/layout"), { recursive: true });
      await writeFile(join(cacheDir, "tmp/pull-999999-abcdef/layout/oci-put-blob123"), "partial");
      await writeFile(join(cacheDir, "disks/0123-orphan.ext4"), "x");
      await writeFile(join(cacheDir, "blobs/sha256", "f".repeat(64)), "stray");
      const again = await openService({ cacheDir, insecureRegistries: [host] });
      try {
        assert.deepEqual(await ls(join(cacheDir, "tmp")), []);
        assert.deepEqual(await ls(join(cacheDir, "disks")), [`${img.key}.ext4`]);
        assert.ok(!(await ls(join(cacheDir, "blobs/sha256"))).includes("f".repeat(64)));
        assert.equal(again.images.list().length, 1);
        await again.images.close();
      } finally {
        await again.cleanup();
      }
      await writeFile(join(cacheDir, "index.json"), "{ not json");
      const fresh = await openService({ cacheDir, insecureRegistries: [host] });
      try {
        assert.equal(fresh.images.list().length, 0);
        assert.deepEqual(await ls(join(cacheDir, "disks")), [], "disks of the lost index are orphans");
        assert.ok((await ls(cacheDir)).some((n) => n.startsWith("index.json.bad-")));
        const back = await fresh.images.pull(`${host}/test/busybox:1`);
        assert.equal(back.key, img.key);
      } finally {
        await fresh.cleanup();
      }
    } finally {
      await cleanup();
    }
  });

  test("a full disk is HOST_DISK_FULL, before downloading when it is clear and when it happens, and leaves nothing", async (t) => {
    const mnt = await mkdtemp(join(tmpdir(), "hf-imgfull-"));
    try {
      for (const [sizeMib, ref] of [
        [4, `${host}/test/busybox:1`], // the free-space check refuses before downloading
        [24, `${host}/test/zeros:1`], // 24 MiB of zeros download as a few KiB and fill the disk while unpacking
      ] as const) {
        try {
          await sh("mount", ["-t", "tmpfs", "-o", `size=${sizeMib}m`, "tmpfs", mnt]);
        } catch (e) {
          t.skip(`cannot mount a tmpfs (needs root): ${(e as Error).message}`);
          return;
        }
        try {
          const { images, calls, cleanup } = await openService({ cacheDir: mnt, insecureRegistries: [host] });
          try {
            await assert.rejects(images.pull(ref), (e: unknown) => {
              assert.ok(isHyperfleetError(e, "HOST_DISK_FULL"), String((e as Error)?.stack ?? e));
              assert.match(e.message, /free space|full/);
              return true;
            });
            assert.equal(calls.some((c) => c.args.includes("copy")), sizeMib !== 4);
            await eventually(async () => (await ls(join(mnt, "tmp"))).length === 0, "work dirs to go");
            await eventually(async () => (await ls(join(mnt, "blobs/sha256"))).length === 0, "blobs to go");
            assert.deepEqual(await ls(join(mnt, "disks")), []);
            const index = JSON.parse(await readFile(join(mnt, "index.json"), "utf8").catch(() => '{"entries":[]}')) as { entries: unknown[] };
            assert.deepEqual(index.entries, []);
          } finally {
            await cleanup();
          }
        } finally {
          await sh("umount", [mnt]);
        }
      }
    } finally {
      await rm(mnt, { recursive: true, force: true });
    }
  });
});
