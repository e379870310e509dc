/**
 * The `hyperfleet` executable (bin/hyperfleet.js, as a user runs it) against a real daemon on
 * loopback, real VMs and a real registry: every verb's --help, exit statuses (the guest command's
 * for run and exec, 1/2/125 for our own failures, the API's code in every message), exec -i,
 * cp round trips, logs (whole, tail, followed), ps --json, rm -f, images. Three VMs boot, one at a time.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { COMMANDS } from "../../src/cli/main.js";
import { freePort } from "../images/registry.js";
import { KEY, vmSkipReason } from "../api/helpers.js";
import { type ImageDaemon, startBusyboxDaemon, type BusyboxDaemon } from "../api/images-helpers.js";

const BIN = fileURLToPath(new URL("../../bin/hyperfleet.js", import.meta.url));
const skip = vmSkipReason();
let fx: BusyboxDaemon | undefined;
let d: ImageDaemon;
let home: string;
let busybox = "";

before(async () => {
  home = await mkdtemp(join(tmpdir(), "hf-cli-home-"));
  if (skip) return;
  fx = await startBusyboxDaemon({ HYPERFLEET_WARM_TEMPLATES: "off" });
  ({ d, busybox } = fx);
});

after(async () => {
  await fx?.close();
  if (home) await rm(home, { recursive: true, force: true });
});

interface Run {
  code: number | null;
  stdout: Buffer;
  out: string;
  err: string;
}

/** Runs the CLI with its own HOME; HYPERFLEET_URL/KEY point at the test daemon unless `env` says otherwise. */
function cli(args: string[], opts: { input?: string | Buffer; env?: Record<string, string | undefined> } = {}): Promise<Run> {
  const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home };
  for (const [k, v] of Object.entries({ HYPERFLEET_URL: d?.url, HYPERFLEET_API_KEY: KEY, ...opts.env })) if (v !== undefined) env[k] = v;
  const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ["pipe", "pipe", "pipe"] });
  const out: Buffer[] = [];
  let err = "";
  child.stdout.on("data", (c: Buffer) => out.push(c));
  child.stderr.on("data", (c: Buffer) => (err += c.toString()));
  child.stdin.end(opts.input ?? "");
  return new Promise((resolve) =>
    child.once("close", (code) => {
      const stdout = Buffer.concat(out);
      resolve({ code, stdout, out: stdout.toString(), err });
    }),
  );
}

function expectFail(r: Run, code: number, errorCode: string): void {
  assert.equal(r.code, code, `exit status; stderr: ${r.err}`);
  assert.match(r.err, new RegExp(`^hyperfleet \\w+: ${errorCode}: .+`, "m"), r.err);
}

test("every verb answers --help (and -h, and `help VERB`) with its usage, contacting no server", async () => {
  const nowhere = { HYPERFLEET_URL: `http://127.0.0.1:${await freePort()}` };
  const top = await cli(["--help"], { env: nowhere });
  assert.equal(top.code, 0);
  for (const c of COMMANDS) {
    for (const args of [[c.name, "--help"], [c.name, "-h"], ["help", c.name]]) {
      const r = await cli(args, { env: nowhere });
      assert.equal(r.code, 0, `${args.join(" ")}: ${r.err}`);
      assert.match(r.out, new RegExp(`^usage: hyperfleet ${c.name}\\b`), args.join(" "));
      assert.equal(r.err, "");
    }
    assert.match(top.out, new RegExp(`^  ${c.name}\\b`, "m"), `top-level help lists ${c.name}`);
  }
  assert.equal((await cli(["ls", "--help"], { env: nowhere })).out, (await cli(["ps", "--help"], { env: nowhere })).out);
});

test("errors: a clear message with the code, and a non-zero exit", { skip: skip ?? false }, async () => {
  expectFail(await cli(["ps"], { env: { HYPERFLEET_URL: `http://127.0.0.1:${await freePort()}` } }), 1, "API_UNREACHABLE");
  expectFail(await cli(["ps"], { env: { HYPERFLEET_API_KEY: "wrong-key-0123456789" } }), 1, "UNAUTHENTICATED");
  expectFail(await cli(["inspect", "no-such-machine"]), 1, "MACHINE_NOT_FOUND");
  expectFail(await cli(["stop", "vm_01J9Z6Y8W2V4T0S5R3Q1P7N9M8"]), 1, "MACHINE_NOT_FOUND");
  expectFail(await cli(["ps", "--bogus"]), 2, "INVALID_ARGUMENT");
  expectFail(await cli(["ps", "--filter", "status=nonsense"]), 2, "INVALID_ARGUMENT");
  expectFail(await cli(["logs"]), 2, "INVALID_ARGUMENT");
  expectFail(await cli(["cp", "a", "b"]), 2, "INVALID_ARGUMENT");
  expectFail(await cli(["wait", "--status", "nope", "x"]), 2, "INVALID_ARGUMENT");
  expectFail(await cli(["run", "--memory", "lots", "--no-image"]), 125, "INVALID_ARGUMENT");
  expectFail(await cli(["exec", "no-such-machine", "true"]), 125, "MACHINE_NOT_FOUND");
  expectFail(await cli(["exec", "-t", "no-such-machine", "sh"]), 125, "MACHINE_NOT_FOUND");
  expectFail(await cli(["run", "-d", "-it", "--no-image", "sh"]), 125, "INVALID_ARGUMENT");
  expectFail(await cli(["shell", "no-such-machine"]), 125, "MACHINE_NOT_FOUND");
  expectFail(await cli(["rmi", "127.0.0.1:1/none:1"]), 1, "IMAGE_NOT_CACHED");
  const unknown = await cli(["frobnicate"]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.err, /unknown command 'frobnicate'/);
});

test("the config file serves when the environment is unset; a broken one is CONFIG_INVALID", { skip: skip ?? false }, async () => {
  const dir = join(home, ".config", "hyperfleet");
  await mkdir(dir, { recursive: true });
  const unset = { HYPERFLEET_URL: undefined, HYPERFLEET_API_KEY: undefined };
  try {
    await writeFile(join(dir, "config.json"), JSON.stringify({ url: d.url, api_key: KEY }));
    const r = await cli(["ps", "--json"], { env: unset });
    assert.equal(r.code, 0, r.err);
    assert.ok(Array.isArray(JSON.parse(r.out)));
    // The environment wins, field by field.
    expectFail(await cli(["ps"], { env: { HYPERFLEET_URL: undefined, HYPERFLEET_API_KEY: "wrong-key-0123456789" } }), 1, "UNAUTHENTICATED");
    await writeFile(join(dir, "config.json"), "{not json");
    expectFail(await cli(["ps"], { env: unset }), 1, "CONFIG_INVALID");
  } finally {
    await rm(join(home, ".config"), { recursive: true, force: true });
  }
});

test("run, ps, inspect, exec (exit codes, -i, timeout), cp, lifecycle, rm -f on the built-in root disk", { skip: skip ?? false, timeout: 600_000 }, async () => {
  const up = await cli(["run", "--no-image", "--name", "cli-a", "--memory", "256m", "-e", "WHO=cli"]);
  assert.equal(up.code, 0, up.err);
  const id = up.out.trim();
  assert.match(id, /^vm_[0-9A-Z]{26}$/);

  const ps = await cli(["ps", "--json"]);
  assert.equal(ps.code, 0, ps.err);
  const list = JSON.parse(ps.out) as Array<{ id: string; name: string; status: string; mem_size_mib: number }>;
  assert.deepEqual(list.map((m) => [m.id, m.name, m.status, m.mem_size_mib]), [[id, "cli-a", "running", 256]]);
  const table = await cli(["ls"]);
  assert.match(table.out, /^ID\s+NAME\s+STATUS\s+IMAGE/);
  assert.match(table.out, new RegExp(`^${id}\\s+cli-a\\s+running\\s+-\\s+1\\s+256 MiB`, "m"));
  assert.equal((await cli(["ps", "-q", "--filter", "status=stopped,failed"])).out, "");
  assert.equal((await cli(["ps", "-a", "-q"])).out, `${id}\n`);
  assert.equal((JSON.parse((await cli(["inspect", "cli-a"])).out) as Array<{ id: string }>)[0]?.id, id);

  // exec: exit statuses, separate streams, the machine's env, stdin, not found, timeout.
  assert.equal((await cli(["exec", "cli-a", "sh", "-c", "exit 7"])).code, 7);
  const streams = await cli(["exec", id, "sh", "-c", 'echo "out $WHO"; echo err >&2; exit 0']);
  assert.deepEqual([streams.code, streams.out, streams.err], [0, "out cli\n", "err\n"]);
  const flags = await cli(["exec", "-e", "A=1", "-w", "/tmp", "cli-a", "sh", "-c", 'echo "$A $(pwd)" "$@"', "sh", "-x", "--y"]);
  assert.equal(flags.out, "1 /tmp -x --y\n", "options after the command are the command's");
  const upper = await cli(["exec", "-i", "cli-a", "tr", "a-z", "A-Z"], { input: "piped through stdin\n" });
  assert.deepEqual([upper.code, upper.out], [0, "PIPED THROUGH STDIN\n"]);
  const binary = await cli(["exec", "cli-a", "sh", "-c", "printf '\\377\\000\\001'"]);
  assert.deepEqual(binary.stdout, Buffer.from([0xff, 0, 1]), "output bytes as the command wrote them");
  const missing = await cli(["exec", "cli-a", "no-such-command"]);
  assert.equal(missing.code, 127);
  assert.match(missing.err, /EXEC_NOT_FOUND/);
  const slow = await cli(["exec", "--timeout", "1", "cli-a", "sh", "-c", "echo partial; sleep 30"]);
  assert.deepEqual([slow.code, slow.out], [124, "partial\n"]);
  assert.match(slow.err, /EXEC_TIMEOUT/);

  // cp: 300 KB both ways, byte-identical, mode kept; into a directory; to stdout.
  const work = await mkdtemp(join(tmpdir(), "hf-cli-cp-"));
  try {
    const data = randomBytes(300 * 1024);
    await writeFile(join(work, "blob.bin"), data, { mode: 0o640 });
    const toVm = await cli(["cp", join(work, "blob.bin"), "cli-a:/tmp/in/blob.bin"]);
    assert.equal(toVm.code, 0, toVm.err);
    assert.equal((await cli(["exec", "cli-a", "stat", "-c", "%s %a", "/tmp/in/blob.bin"])).out, `${data.length} 640\n`);
    const back = await cli(["cp", `${id}:/tmp/in/blob.bin`, join(work, "back.bin")]);
    assert.equal(back.code, 0, back.err);
    assert.ok((await readFile(join(work, "back.bin"))).equals(data), "byte-identical after the round trip");
    assert.equal((await stat(join(work, "back.bin"))).mode & 0o777, 0o640);
    assert.equal((await cli(["cp", join(work, "blob.bin"), "cli-a:/tmp/in"])).code, 0, "into an existing directory");
    await mkdir(join(work, "dir"));
    assert.equal((await cli(["cp", "cli-a:/tmp/in/blob.bin", join(work, "dir")])).code, 0);
    assert.ok((await readFile(join(work, "dir", "blob.bin"))).equals(data));
    assert.equal((await cli(["cp", "cli-a:/etc/hostname", "-"])).out, `${id}\n`);
    // A directory both ways (tar): byte-identical tree, modes and a symlink kept; into an existing
    // directory it keeps its name, else it becomes the destination (Docker's rule).
    const tree = join(work, "tree");
    await mkdir(join(tree, "sub", "deeper"), { recursive: true });
    await writeFile(join(tree, "a.bin"), randomBytes(200 * 1024), { mode: 0o600 });
    await writeFile(join(tree, "sub", "deeper", "b.txt"), "hello\n", { mode: 0o755 });
    await writeFile(join(tree, "empty"), "");
    await symlink("sub/deeper/b.txt", join(tree, "link"));
    const upTree = await cli(["cp", tree, "cli-a:/tmp/t"]);
    assert.equal(upTree.code, 0, upTree.err);
    assert.equal((await cli(["exec", "cli-a", "cat", "/tmp/t/sub/deeper/b.txt"])).out, "hello\n");
    assert.equal((await cli(["cp", tree, "cli-a:/tmp/t"])).code, 0, "into the now existing directory");
    assert.equal((await cli(["exec", "cli-a", "readlink", "/tmp/t/tree/link"])).out, "sub/deeper/b.txt\n");
    const downTree = await cli(["cp", "cli-a:/tmp/t/tree", join(work, "back-tree")]);
    assert.equal(downTree.code, 0, downTree.err);
    assert.deepEqual(await snapshotTree(join(work, "back-tree")), await snapshotTree(tree), "the tree round-trips byte-identical");
    await mkdir(join(work, "into"));
    assert.equal((await cli(["cp", "cli-a:/tmp/t/tree", join(work, "into")])).code, 0, "into an existing local directory");
    assert.deepEqual(await snapshotTree(join(work, "into", "tree")), await snapshotTree(tree));
    expectFail(await cli(["cp", "cli-a:/tmp/nope", join(work, "x")]), 1, "FILE_NOT_FOUND");
    expectFail(await cli(["cp", "cli-a:relative", join(work, "x")]), 2, "INVALID_ARGUMENT");
  } finally {
    await rm(work, { recursive: true, force: true });
  }

  // Lifecycle by name; rm refuses a running machine without -f.
  expectFail(await cli(["rm", "cli-a"]), 1, "INVALID_STATE_TRANSITION");
  assert.equal((await cli(["stop", "cli-a"])).out, "cli-a\n");
  assert.equal((await cli(["wait", "--status", "stopped", "cli-a"])).out, "cli-a stopped\n");
  expectFail(await cli(["exec", "cli-a", "true"]), 125, "MACHINE_NOT_RUNNING");
  assert.equal((await cli(["start", "cli-a"])).code, 0);
  const restarted = await cli(["restart", "--json", "cli-a"]);
  assert.equal((JSON.parse(restarted.out) as Array<{ status: string }>)[0]?.status, "running", restarted.err);
  assert.equal((await cli(["exec", "cli-a", "true"])).code, 0);
  const removed = await cli(["rm", "-f", "cli-a"]);
  assert.deepEqual([removed.code, removed.out], [0, "cli-a\n"]);
  assert.deepEqual(JSON.parse((await cli(["ps", "-a", "--json"])).out), []);
});

test("run CMD: output printed, exit status propagated, --rm deletes the machine", { skip: skip ?? false, timeout: 300_000 }, async () => {
  const r = await cli(["run", "--rm", "--no-image", "--name", "cli-once", "sh", "-c", "echo hi; echo oops >&2; exit 3"]);
  assert.deepEqual([r.code, r.out, r.err], [3, "hi\n", "oops\n"]);
  assert.deepEqual(JSON.parse((await cli(["ps", "-a", "--json"])).out), [], "--rm deleted it");
});

test("pull, images, run -d IMAGE CMD, logs (whole, tail, follow), rmi", { skip: skip ?? false, timeout: 300_000 }, async () => {
  const pulled = await cli(["pull", busybox]);
  assert.equal(pulled.code, 0, pulled.err);
  const digest = pulled.out.trim();
  assert.match(digest, /^sha256:[0-9a-f]{64}$/);
  const imgs = JSON.parse((await cli(["images", "--json"])).out) as Array<{ digest: string }>;
  assert.ok(imgs.some((i) => i.digest === digest));
  assert.match((await cli(["images"])).out, /^REFERENCE\s+DIGEST\s+SIZE/);

  const started = await cli(["run", "-d", "--name", "cli-logs", busybox, "sh", "-c", "echo first; while true; do echo tick; busybox sleep 1; done"]);
  assert.equal(started.code, 0, started.err);
  assert.equal((await cli(["wait", "--timeout", "180", "cli-logs"])).code, 0);
  expectFail(await cli(["rmi", busybox]), 1, "IMAGE_IN_USE");
  const whole = await cli(["logs", "cli-logs"]);
  assert.equal(whole.code, 0, whole.err);
  assert.match(whole.out, /^first\n/);
  assert.equal((await cli(["logs", "--tail", "1", "cli-logs"])).out, "tick\n");

  // -f streams new lines as they come. Once two arrived we close the pipe, as `| head -2` would:
  // the CLI must end by itself, quietly and with status 0, at its next write.
  const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home, HYPERFLEET_URL: d.url, HYPERFLEET_API_KEY: KEY };
  const follow = spawn(process.execPath, [BIN, "logs", "-f", "--tail", "0", "cli-logs"], { env, stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise<number | null>((resolve) => follow.once("exit", (code) => resolve(code)));
  let seen = "";
  let stderr = "";
  follow.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  const guard = setTimeout(() => follow.kill("SIGKILL"), 60_000);
  try {
    await new Promise<void>((resolve) => {
      follow.stdout.on("data", (c: Buffer) => {
        seen += c.toString();
        if ((seen.match(/tick\n/g) ?? []).length >= 2) {
          follow.stdout.destroy();
          resolve();
        }
      });
    });
    assert.equal(await exited, 0, `logs -f after its reader left: ${stderr}`);
    assert.equal(stderr, "");
  } finally {
    clearTimeout(guard);
  }
  assert.doesNotMatch(seen, /first/, "--tail 0 starts at the end");

  assert.equal((await cli(["rm", "-f", "cli-logs"])).code, 0);
  const removed = await cli(["rmi", busybox]);
  assert.deepEqual([removed.code, removed.out], [0, `${busybox}\n`], removed.err);
  expectFail(await cli(["rmi", busybox]), 1, "IMAGE_NOT_CACHED");
});

test("scripts/link-cli.sh (npm run setup) puts the command on the PATH, idempotently, never over a file of its own", async () => {
  const dir = await mkdtemp(join(tmpdir(), "hf-cli-link-"));
  const sh = (link: string) =>
    new Promise<{ code: number | null; out: string }>((resolve) => {
      const c = spawn("bash", [fileURLToPath(new URL("../../scripts/link-cli.sh", import.meta.url)), link], { stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      c.stdout.on("data", (b: Buffer) => (out += b.toString()));
      c.stderr.on("data", (b: Buffer) => (out += b.toString()));
      c.once("close", (code) => resolve({ code, out }));
    });
  try {
    const link = join(dir, "hyperfleet");
    assert.equal((await sh(link)).code, 0);
    const again = await sh(link);
    assert.deepEqual([again.code, /up to date/.test(again.out)], [0, true]);
    const help = await new Promise<string>((resolve) => {
      const c = spawn(link, ["cp", "--help"], { cwd: "/", stdio: ["ignore", "pipe", "ignore"] });
      let out = "";
      c.stdout.on("data", (b: Buffer) => (out += b.toString()));
      c.once("close", () => resolve(out));
    });
    assert.match(help, /^usage: hyperfleet cp/, "the link runs from any directory");
    await writeFile(join(dir, "taken"), "#!/bin/sh\n");
    assert.equal((await sh(join(dir, "taken"))).code, 1);
    assert.equal(await readFile(join(dir, "taken"), "utf8"), "#!/bin/sh\n");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

/** Every entry under `dir`: type, mode, and the bytes (files) or target (symlinks), sorted by path. */
async function snapshotTree(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const rel of (await readdir(dir, { recursive: true })).sort()) {
    const p = join(dir, rel);
    const st = await lstat(p);
    const what = st.isSymbolicLink() ? `link ${await readlink(p)}` : st.isDirectory() ? "dir" : `file ${createHash("sha256").update(await readFile(p)).digest("hex")}`;
    out.push(`${rel} ${(st.mode & 0o7777).toString(8)} ${what}`);
  }
  return out;
}
