/**
 * Pull progress end to end, no VM needed: the SDK's images.pull with onProgress against a real
 * daemon and loopback registry (progress in order, then the image; an unknown image fails with
 * its code), and `hyperfleet pull` not on a terminal printing plain progress lines on stderr, the
 * digest on stdout, and nothing with --quiet. Also the pure bar renderer.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HyperfleetClient } from "../../src/sdk/client.js";
import { progressBar } from "../../src/cli/pull-progress.js";
import type { PullProgressJson } from "../../src/contract/images.js";
import { addLabelVariants, buildBusyboxLayout, push, workDir } from "../images/fixtures.js";
import { startRegistry, type TestRegistry } from "../images/registry.js";
import { startImageDaemon, type ImageDaemon } from "../api/images-helpers.js";
import { runCli } from "./run-cli.js";
import { KEY } from "../api/helpers.js";

let registry: TestRegistry;
let fixtures: string;
let home: string;
let d: ImageDaemon | undefined;
let layout = "";
const refs: string[] = [];

before(async () => {
  home = await mkdtemp(join(tmpdir(), "hf-pullprog-home-"));
  registry = await startRegistry();
  fixtures = await workDir();
  layout = await buildBusyboxLayout(fixtures);
  // One image per test (distinct configs), so each pull is a cold one.
  for (const tag of await addLabelVariants(layout, 3)) {
    refs.push(`${registry.host}/test/pp:${tag}`);
    await push(layout, tag, refs.at(-1)!);
  }
  d = await startImageDaemon({ HYPERFLEET_INSECURE_REGISTRIES: registry.host });
});

after(async () => {
  await d?.close();
  await registry?.stop();
  if (fixtures) await rm(fixtures, { recursive: true, force: true });
  if (home) await rm(home, { recursive: true, force: true });
});

const cli = (args: string[]) => runCli({ url: d!.url, home: home }, args);

test("SDK: images.pull with onProgress reports non-decreasing bytes ending at the total, then the image", async () => {
  const hf = new HyperfleetClient({ url: d!.url, apiKey: KEY });
  const seen: PullProgressJson[] = [];
  const img = (await hf.images.pull(refs[0]!, { onProgress: (p) => seen.push(p) })).unwrap();
  assert.match(img.digest, /^sha256:[0-9a-f]{64}$/);
  assert.ok(seen.some((p) => p.phase === "downloading"), JSON.stringify(seen));
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i]!.bytes_done >= seen[i - 1]!.bytes_done, JSON.stringify(seen));
  const last = seen.at(-1)!;
  assert.equal(last.phase, "done");
  assert.ok(last.bytes_total > 0);
  assert.equal(last.bytes_done, last.bytes_total);

  const missing = await hf.images.pull(`${registry.host}/test/pp:nope`, { onProgress: () => undefined });
  assert.equal(missing.ok, false);
  assert.equal(!missing.ok && missing.error.code, "IMAGE_NOT_FOUND");
});

test("CLI: pull not on a terminal prints plain progress lines, then the digest; --quiet prints none", async () => {
  const r = await cli(["pull", refs[1]!]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^sha256:[0-9a-f]{64}\n$/);
  const lines = r.err.trimEnd().split("\n");
  assert.ok(lines.length >= 2, r.err);
  for (const l of lines) assert.match(l, /^\w+ layers \d+\/\d+ bytes \d+\/\d+$/, r.err);
  assert.ok(lines.some((l) => l.startsWith("downloading ")), r.err);
  const m = /^done layers (\d+)\/(\d+) bytes (\d+)\/(\d+)$/.exec(lines.at(-1)!);
  assert.ok(m && m[1] === m[2] && m[3] === m[4] && Number(m[4]) > 0, r.err);
  assert.ok(!r.err.includes("\r"), "no terminal control when not a TTY");

  const q = await cli(["pull", "-q", "--json", refs[2]!]);
  assert.equal(q.code, 0, q.err);
  assert.equal(q.err, "");
  assert.match((JSON.parse(q.out) as { digest: string }).digest, /^sha256:/);
});

test("the terminal bar shows phase, layers, MiB and rate", () => {
  const bar = progressBar({ phase: "downloading", layers_done: 1, layers_total: 2, bytes_done: 1024 * 1024, bytes_total: 4 * 1024 * 1024 }, 2 * 1024 * 1024, 8);
  assert.equal(bar, "downloading [##......] 1/2 layers 1.0/4.0 MiB 2.0 MiB/s");
});
