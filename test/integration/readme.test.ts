/**
 * The README's library example, run as written: it must keep working as the code changes. It is
 * written inside the package so that `import ... from "hyperfleet"` resolves to this package's
 * build (dist/, made by setup).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { rm, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const root = fileURLToPath(new URL("../..", import.meta.url));

test("the README's library example runs as documented", async () => {
  const readme = readFileSync(`${root}/README.md`, "utf8");
  const section = readme.slice(readme.indexOf("## Use it as a library"));
  const code = /```typescript\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(code, "README has a typescript example under 'Use it as a library'");
  const file = `${root}/.readme-example-${process.pid}.mjs`;
  await writeFile(file, code);
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [file], { cwd: root, timeout: 120_000 });
    const lines = stdout.split("\n").filter((l) => l.trim() !== "");
    assert.match(lines[0]!, /^Linux vm_\w+ 6\.\d+\.\d+-\d+-cloud-amd64 /);
    assert.equal(lines[1], "HELLO");
    assert.equal(lines[2], "EXEC_TIMEOUT");
  } finally {
    await rm(file, { force: true });
  }
});
