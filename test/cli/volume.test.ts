/**
 * `hyperfleet volume create|ls|rm` and `hyperfleet run -v NAME:/MOUNT[:ro]` (bin/hyperfleet.js, as
 * a user runs it) against a real daemon child process on loopback and real VMs: what one machine
 * wrote is read by the next, a held volume is not removed (VOLUME_IN_USE), bad specs are usage
 * errors. Three VMs boot, one at a time.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { endDaemons, spawnDaemon, vmSkipReason, type ChildDaemon } from "../api/helpers.js";
import { runCli } from "./run-cli.js";

const skip = vmSkipReason();
let dataDir = "";
let home = "";
let d: ChildDaemon | undefined;

before(async () => {
  if (skip) return;
  home = await mkdtemp(join(tmpdir(), "hf-cli-vol-home-"));
  dataDir = await mkdtemp(join(tmpdir(), "hf-cli-vol-"));
  d = await spawnDaemon(dataDir);
});

after(async () => {
  if (skip) return;
  await endDaemons(d ? [d] : [], dataDir);
  await rm(home, { recursive: true, force: true });
});

const cli = (args: string[]) => runCli({ url: d!.url, home: home }, args);

test("volume create, run -v, data kept between machines, rm refused while held, ls", { skip: skip ?? false }, async () => {
  const c = await cli(["volume", "create", "--size", "64m", "cli-state"]);
  assert.equal(c.code, 0, c.err);
  assert.equal(c.out, "cli-state\n");
  const ls = await cli(["volume", "ls"]);
  assert.match(ls.out, /^NAME\s+ID\s+SIZE\s+MACHINE\s+CREATED\ncli-state\s+vol_\w+\s+64 MiB\s+-\s+/);

  const w = await cli(["run", "--rm", "-v", "cli-state:/data", "--no-image", "sh", "-c", "echo from-cli > /data/f"]);
  assert.equal(w.code, 0, w.err);
  const r = await cli(["run", "--rm", "-v", "cli-state:/ro:ro", "--no-image", "sh", "-c", "cat /ro/f; echo x > /ro/g"]);
  assert.equal(r.out, "from-cli\n");
  assert.notEqual(r.code, 0, "the read-only mount refused the write");
  assert.match(r.err, /Read-only file system/);

  const held = await cli(["run", "-d", "-v", "cli-state:/data", "--no-image"]);
  assert.equal(held.code, 0, held.err);
  const id = held.out.trim();
  const refused = await cli(["volume", "rm", "cli-state"]);
  assert.equal(refused.code, 1);
  assert.match(refused.err, /^hyperfleet volume: VOLUME_IN_USE: /m);
  assert.match((await cli(["volume", "ls"])).out, new RegExp(`cli-state\\s+vol_\\w+\\s+64 MiB\\s+${id}\\s`));
  assert.equal((await cli(["rm", "-f", id])).code, 0);

  const gone = await cli(["volume", "rm", "cli-state"]);
  assert.equal(gone.code, 0, gone.err);
  assert.equal((await cli(["volume", "ls", "-q"])).out, "");
});

test("bad -v specs (run: 125, its own failures) and volume verbs (2) are usage errors that create no machine", { skip: skip ?? false }, async () => {
  for (const spec of ["nomount", "x:relative", "x:/a:rx", ":/a"]) {
    const r = await cli(["run", "-v", spec, "--no-image", "true"]);
    assert.equal(r.code, 125, `${spec}: ${r.err}`);
    assert.match(r.err, /expected NAME:\/MOUNT\[:ro\]/);
  }
  assert.equal((await cli(["volume", "frobnicate"])).code, 2);
  assert.equal((await cli(["volume", "create"])).code, 2);
  const unknown = await cli(["run", "-v", "no-such:/data", "--no-image", "true"]);
  assert.equal(unknown.code, 125);
  assert.match(unknown.err, /VOLUME_NOT_FOUND/);
  assert.equal((await cli(["ps", "-a", "-q"])).out, "");
});
