/**
 * Registry auth against a real htpasswd-protected registry: missing and wrong credentials are
 * IMAGE_UNAUTHORIZED (a 400, never our API's 401), right ones pull; and the password never shows up
 * in a spawned process's argv (recorded, and scanned in /proc while the pull runs), in an error
 * message, or in any file the cache keeps.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { isHyperfleetError } from "../../src/core/errors.js";
import { httpStatus } from "../../src/api/http-status.js";
import { buildBusyboxLayout, push, workDir } from "./fixtures.js";
import { allFiles, ls, openService } from "./harness.js";
import { startRegistry, type TestRegistry } from "./registry.js";

const USER = "hf-user";
const PASSWORD = "Pw-7f3c9e1d-never-logged";
let registry: TestRegistry;
let fixtureDir: string;
let ref: string;

before(async () => {
  registry = await startRegistry({ auth: { username: USER, password: PASSWORD } });
  fixtureDir = await workDir();
  const layout = await buildBusyboxLayout(fixtureDir);
  const authFile = join(fixtureDir, "push-auth.json");
  await writeFile(authFile, JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from(`${USER}:${PASSWORD}`).toString("base64") } } }), { mode: 0o600 });
  ref = `${registry.host}/private/busybox:1`;
  await push(layout, "bb", ref, { authFile });
});

after(async () => {
  await registry?.stop();
  if (fixtureDir) await rm(fixtureDir, { recursive: true, force: true });
});

/** Scans every process's command line for `needle` until stopped; returns the offending ones. */
function watchProcesses(needle: string): { stop(): Promise<string[]> } {
  const hits: string[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      for (const pid of await readdir("/proc").catch(() => [] as string[])) {
        if (!/^\d+$/.test(pid)) continue;
        const cmd = await readFile(`/proc/${pid}/cmdline`).catch(() => null);
        if (cmd?.includes(needle)) hits.push(cmd.toString().replace(/\0/g, " "));
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return hits;
    },
  };
}

test("credentials: missing or wrong is IMAGE_UNAUTHORIZED; right ones pull; the password is never exposed", async () => {
  const { images, calls, cacheDir, cleanup } = await openService({ insecureRegistries: [registry.host] });
  const secrets = [PASSWORD, Buffer.from(`${USER}:${PASSWORD}`).toString("base64")];
  try {
    for (const auth of [undefined, { username: USER, password: "wrong-password" }]) {
      await assert.rejects(images.pull(ref, auth ? { auth } : {}), (e: unknown) => {
        assert.ok(isHyperfleetError(e, "IMAGE_UNAUTHORIZED"), String((e as Error)?.stack ?? e));
        assert.match(e.message, /credentials are missing or wrong/);
        assert.equal(e.category, "invalid_argument");
        assert.equal(httpStatus(e.code), 400, "a registry's 401 must not look like our API's own 401");
        return true;
      });
    }
    assert.equal(images.list().length, 0);

    const procs = watchProcesses(PASSWORD);
    let img;
    try {
      img = await images.pull(ref, { auth: { username: USER, password: PASSWORD } });
    } finally {
      assert.deepEqual(await procs.stop(), [], "no process had the password on its command line");
    }
    assert.equal(img.refs[0], ref);

    // Nothing spawned carried a secret in argv or environment.
    assert.ok(calls.length >= 4);
    for (const c of calls) {
      const text = JSON.stringify(c);
      for (const s of secrets) assert.ok(!text.includes(s), `secret in ${c.cmd} call`);
      assert.ok(!c.args.some((a) => a.includes("creds")), "no --creds style flag");
    }
    // The auth files are gone and no file of the cache (index, configs, disks, blobs) holds a secret.
    assert.deepEqual(await ls(join(cacheDir, "tmp")), []);
    const files = await allFiles(cacheDir);
    assert.ok(files.some((f) => f.path.endsWith("index.json")));
    for (const f of files) for (const s of secrets) assert.equal(f.data.indexOf(s), -1, `secret in ${f.path}`);

    // A cached image does not need the credentials again (the cache is host-wide; see README).
    assert.equal((await images.pull(ref)).key, img.key);
  } finally {
    await cleanup();
  }
});
