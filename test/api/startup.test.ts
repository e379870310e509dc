/**
 * The real daemon process at startup, no VM needed: readable CONFIG_INVALID errors, the refusal
 * to run without auth on a public address, and the generated API key (printed once, stored
 * hashed, accepted on the next start).
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { spawnDaemon, type ChildDaemon } from "./helpers.js";

const REPO = fileURLToPath(new URL("../../", import.meta.url));
const dirs: string[] = [];
const children: ChildDaemon[] = [];

after(async () => {
  for (const c of children) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill("SIGKILL");
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** Runs `npm start`'s command with `env`; resolves with exit code and output. */
function runDaemon(env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ["--import", "tsx", "src/daemon/main.ts"], {
      cwd: REPO,
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    p.stdout.on("data", (d: Buffer) => (out += d.toString()));
    p.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => p.kill("SIGKILL"), 30_000);
    p.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

test("invalid configuration: exit 78 and a message naming each variable", async () => {
  const r = await runDaemon({ PORT: "http", LOG_LEVEL: "loud", HYPERFLEET_FILE_MAX_SIZE: "-5" });
  assert.equal(r.code, 78, r.out);
  assert.match(r.out, /invalid configuration/);
  assert.match(r.out, /PORT must be a whole number, got 'http'/);
  assert.match(r.out, /LOG_LEVEL must be one of/);
  assert.match(r.out, /HYPERFLEET_FILE_MAX_SIZE/);
});

test("auth off on a non-loopback address is refused", async () => {
  const r = await runDaemon({ HYPERFLEET_AUTH: "off", HOST: "0.0.0.0" });
  assert.equal(r.code, 78, r.out);
  assert.match(r.out, /HYPERFLEET_AUTH is off.*HOST is '0.0.0.0'/);
});

test("first start generates a key, prints it once, stores only its hash; the next start accepts it", async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "hf-startup-"));
  dirs.push(dataDir);
  const noKey = { HYPERFLEET_API_KEY: "" };
  const d1 = await spawnDaemon(dataDir, noKey);
  children.push(d1);
  const key = /\bhf_[A-Za-z0-9_-]{43}\b/.exec(d1.output())?.[0];
  assert.ok(key, `a generated key is printed:\n${d1.output()}`);
  const call = (c: ChildDaemon, k: string) => fetch(`${c.url}/machines`, { headers: { authorization: `Bearer ${k}` } });
  assert.equal((await call(d1, key)).status, 200);
  assert.equal((await call(d1, "hf_wrong")).status, 401);
  process.kill(d1.pid, "SIGTERM");
  assert.equal((await d1.exited).code, 0);

  for (const f of readdirSync(dataDir).filter((f) => f.startsWith("hyperfleet.db"))) {
    assert.ok(!readFileSync(join(dataDir, f)).includes(Buffer.from(key)), `${f} must not contain the key`);
  }

  const d2 = await spawnDaemon(dataDir, noKey);
  children.push(d2);
  assert.doesNotMatch(d2.output(), /hf_[A-Za-z0-9_-]{43}/, "the key is printed only once");
  assert.equal((await call(d2, key)).status, 200);
  const health = await fetch(`${d2.url}/health`);
  assert.equal(health.status, 200);
  process.kill(d2.pid, "SIGTERM");
  assert.equal((await d2.exited).code, 0);
});
