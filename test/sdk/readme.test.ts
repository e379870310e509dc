/**
 * The README's SDK example, run as written against a real daemon on loopback (one VM): it must keep
 * working as the code changes. Written inside the package so that `import { HyperfleetClient } from
 * "hyperfleet"` resolves through package.json's exports to this package's build (dist/, made by setup).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { rm, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { KEY, vmSkipReason } from "../api/helpers.js";
import { startImageDaemon, type ImageDaemon } from "../api/images-helpers.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
const skip = vmSkipReason() ?? (existsSync(`${root}/dist/src/index.js`) ? null : "no dist/: run `npm run build` (npm run setup does)");
let d: ImageDaemon;

before(async () => {
  if (!skip) d = await startImageDaemon();
});
after(async () => {
  await d?.close();
});

test("the README's SDK example runs as documented, importing from \"hyperfleet\"", { skip: skip ?? false, timeout: 240_000 }, async () => {
  const readme = readFileSync(`${root}/README.md`, "utf8");
  const section = readme.slice(readme.indexOf("## Use the SDK"));
  const code = /```typescript\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(code?.includes('from "hyperfleet"'), "README has a typescript example under 'Use the SDK'");
  const file = `${root}/.readme-sdk-${process.pid}.mjs`;
  await writeFile(file, code!);
  try {
    const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", HYPERFLEET_URL: d.url, HYPERFLEET_API_KEY: KEY };
    const { stdout } = await promisify(execFile)(process.execPath, [file], { cwd: root, env, timeout: 200_000 });
    assert.deepEqual(stdout.split("\n").filter((l) => l !== ""), ["0 Linux", "hello", "MACHINE_NOT_FOUND 404"]);
    assert.equal((await d.req("GET", "/machines")).body, "[]", "the example deleted its machine");
  } finally {
    await rm(file, { force: true });
  }
});
