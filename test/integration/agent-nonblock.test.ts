/**
 * In a real VM: the agent (PID 1) answers a PING and an EXEC while a
 * recursive DELETE of 50,000 files runs (ADR 0007), and an fsync'ed upload lands intact.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { after, before, test } from "node:test";
import { Machine } from "../../src/embed/machine.js";
import { dataDir, tempRunDir } from "./helpers.js";

let m: Machine;
let runDir: string;

before(async () => {
  runDir = await tempRunDir();
  // 512 MiB: tmpfs gets one inode per two pages of RAM, and the tree needs 50,000.
  m = new Machine({ vcpuCount: 1, memSizeMib: 512, dataDir: dataDir(), runDir });
  (await m.start()).unwrap();
});
after(async () => {
  await m.destroy();
  assert.equal(existsSync(runDir), false);
});

test("a PING and an EXEC are answered while a recursive DELETE of 50,000 files runs", async (t) => {
  // On tmpfs (the base root disk has too few inodes). Shell builtins only: a fork per file would
  // take minutes under TCG.
  const mk = (await m.exec(["sh", "-c", "mkdir -p /tmp/tree && cd /tmp/tree && i=0; while [ $i -lt 50000 ]; do : > f$i; i=$((i+1)); done; ls | wc -l"], { timeoutMs: 300_000 })).unwrap();
  assert.equal(mk.stdout.trim(), "50000", mk.stderr);
  const agent = m.agentClient!;
  const order: string[] = [];
  const t0 = Date.now();
  const note = (name: string) => () => order.push(`${name} ${Date.now() - t0} ms`);
  const del = m.remove("/tmp/tree", { recursive: true }).then((r) => (note("delete")(), r));
  const ping = agent.ping().then(note("ping"));
  const exec = m.exec(["true"]).then((r) => (note("exec")(), r));
  const [d, , e] = await Promise.all([del, ping, exec]);
  t.diagnostic(`completions: ${order.join(", ")}`);
  d.unwrap();
  assert.equal(e.unwrap().exitCode, 0);
  assert.match(order[2]!, /^delete /, `the DELETE must finish last: ${order.join(", ")}`);
  assert.equal((await m.stat("/tmp/tree")).ok, false);
});

test("an upload with fsync lands intact", async () => {
  const data = Buffer.alloc(3 * 1024 * 1024 + 17, "x");
  assert.equal((await m.writeFile("/var/synced.bin", data, { fsync: true, mkdirs: true })).unwrap().size, data.length);
  assert.deepEqual((await m.readFile("/var/synced.bin")).unwrap(), data);
});
