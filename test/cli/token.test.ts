/**
 * `hyperfleet token [--rotate] MACHINE` (the executable, as a user runs it) against a real daemon
 * on loopback; the machine is created but never started, so no VM boots.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnDaemon, type ChildDaemon } from "../api/helpers.js";
import { runCli } from "./run-cli.js";

let dataDir = "";
let d: ChildDaemon | undefined;

before(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "hf-cli-token-"));
  d = await spawnDaemon(dataDir);
});

after(async () => {
  if (d && d.proc.exitCode === null) {
    d.proc.kill("SIGTERM");
    await d.exited;
  }
  await rm(dataDir, { recursive: true, force: true });
});

const cli = (args: string[]) => runCli({ url: d!.url, home: dataDir }, args);

test("token prints the machine's token by name or id; --rotate prints a new one that replaces it", async () => {
  const c = await d!.fetch("POST", "/machines", { name: "gw", vcpu_count: 1, mem_size_mib: 128, network: {}, services: [{ port: 8080 }] });
  assert.equal(c.status, 201, JSON.stringify(c.body));
  const first = c.body.access_token as string;
  const byName = await cli(["token", "gw"]);
  assert.deepEqual([byName.code, byName.out, byName.err], [0, `${first}\n`, ""]);
  assert.equal((await cli(["token", c.body.id as string])).out, `${first}\n`);
  const rotated = await cli(["token", "--rotate", "gw"]);
  assert.equal(rotated.code, 0, rotated.err);
  const fresh = rotated.out.trim();
  assert.ok(fresh.length >= 43 && fresh !== first);
  assert.equal((await cli(["token", "gw"])).out, `${fresh}\n`);
  const missing = await cli(["token", "nobody"]);
  assert.equal(missing.code, 1);
  assert.match(missing.err, /^hyperfleet token: MACHINE_NOT_FOUND: /m);
  assert.equal((await cli(["token"])).code, 2);
});
