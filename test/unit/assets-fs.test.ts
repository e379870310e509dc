import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeWorkDir, publishDir, sweepStaleWorkDirs, writeFileAtomic } from "../../src/assets/fs-util.js";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "hf-assets-"));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test("fs: atomic writes leave only the final file", () =>
  withDir(async (dir) => {
    const f = join(dir, "sub", "assets.json");
    await writeFileAtomic(f, "one");
    await writeFileAtomic(f, "two");
    assert.equal(await readFile(f, "utf8"), "two");
    assert.deepEqual(await readdir(join(dir, "sub")), ["assets.json"]);
  }));

test("fs: work dirs of dead setups are swept, live ones kept", () =>
  withDir(async (dir) => {
    const mine = await makeWorkDir(dir, "kernel");
    await mkdir(join(dir, "tmp", "rootfs-999999999-AbC123")); // above pid_max: never alive
    await mkdir(join(dir, "tmp", "rootfs-1-XyZ789")); // PID 1 always runs
    await mkdir(join(dir, "tmp", "unrelated"));
    assert.deepEqual(await sweepStaleWorkDirs(dir), ["rootfs-999999999-AbC123"]);
    assert.deepEqual((await readdir(join(dir, "tmp"))).sort(), [mine.split("/").pop(), "rootfs-1-XyZ789", "unrelated"].sort());
  }));

test("fs: publishing over an existing dir keeps the existing one", () =>
  withDir(async (dir) => {
    await mkdir(join(dir, "a"));
    await writeFileAtomic(join(dir, "a", "f"), "new");
    await mkdir(join(dir, "final"));
    await writeFileAtomic(join(dir, "final", "f"), "old");
    await publishDir(join(dir, "a"), join(dir, "final"));
    assert.equal(await readFile(join(dir, "final", "f"), "utf8"), "old");
    assert.deepEqual((await readdir(dir)).sort(), ["final"]);
  }));
