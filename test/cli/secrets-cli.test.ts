/**
 * `hyperfleet run --secret/--secret-file` and `hyperfleet secrets set/ls` (the executable, as a
 * user runs it) against a real daemon and VM: the values reach /run/secrets, come from the
 * shell's environment or a file (never the CLI's argv), are replaced by `secrets set`, and no
 * command prints one.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { KEY, vmSkipReason } from "../api/helpers.js";
import { startImageDaemon, type ImageDaemon } from "../api/images-helpers.js";

const BIN = fileURLToPath(new URL("../../bin/hyperfleet.js", import.meta.url));
const skip = vmSkipReason();
let d: ImageDaemon | undefined;
let home = "";

before(async () => {
  home = await mkdtemp(join(tmpdir(), "hf-cli-sec-"));
  if (!skip) d = await startImageDaemon({ HYPERFLEET_WARM_TEMPLATES: "off" });
});

after(async () => {
  await d?.close();
  await rm(home, { recursive: true, force: true });
});

function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home, HYPERFLEET_URL: d!.url, HYPERFLEET_API_KEY: KEY, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr.on("data", (c: Buffer) => (err += c.toString()));
  return new Promise((resolve) => child.once("close", (code) => resolve({ code, out, err })));
}

const sha = (s: string) => createHash("sha256").update(s).digest("hex");

test("run --secret NAME (from the environment) and --secret-file; secrets ls and set", { skip: skip ?? false, timeout: 300_000 }, async () => {
  const fromEnv = `env-${randomBytes(12).toString("hex")}`;
  const fromFile = `file-${randomBytes(12).toString("hex")}`;
  const rotated = `rot-${randomBytes(12).toString("hex")}`;
  const file = join(home, "key.txt");
  await writeFile(file, fromFile, { mode: 0o600 });

  const run = await cli(["run", "-d", "--no-image", "--name", "sec-cli", "--secret", "TOKEN", "--secret-file", `KEY=${file}`], { TOKEN: fromEnv });
  assert.equal(run.code, 0, run.err);
  assert.equal((await cli(["wait", "sec-cli"])).code, 0);
  const hashes = await cli(["exec", "sec-cli", "/bin/busybox", "sh", "-c", "/bin/busybox sha256sum /run/secrets/KEY /run/secrets/TOKEN | /bin/busybox cut -d' ' -f1"]);
  assert.equal(hashes.code, 0, hashes.err);
  assert.equal(hashes.out, `${sha(fromFile)}\n${sha(fromEnv)}\n`);
  assert.equal((await cli(["secrets", "ls", "sec-cli"])).out, "KEY\nTOKEN\n");

  const set = await cli(["secrets", "set", "sec-cli", "NEW"], { NEW: rotated });
  assert.equal(set.code, 0, set.err);
  assert.equal(set.out, "NEW\n");
  const after = await cli(["exec", "sec-cli", "/bin/busybox", "sh", "-c", "/bin/busybox ls -A /run/secrets; /bin/busybox sha256sum /run/secrets/NEW | /bin/busybox cut -d' ' -f1"]);
  assert.equal(after.out, `NEW\n${sha(rotated)}\n`, after.err);
  assert.equal((await cli(["secrets", "ls", "sec-cli", "--json"])).out.replace(/\s/g, ""), '["NEW"]');

  const inspect = await cli(["inspect", "sec-cli"]);
  assert.equal(inspect.code, 0, inspect.err);
  for (const v of [fromEnv, fromFile, rotated]) assert.ok(!inspect.out.includes(v) && !d!.logs().includes(v), "a value was printed or logged");

  const unset = await cli(["secrets", "set", "sec-cli", "NOT_EXPORTED"]);
  assert.notEqual(unset.code, 0);
  assert.match(unset.err, /INVALID_ARGUMENT: --secret NOT_EXPORTED: not set in this environment/);
  assert.equal((await cli(["rm", "-f", "sec-cli"])).code, 0);
});
