/**
 * Secrets at rest and in logs, against the real daemon (real SQLite file, real skopeo):
 * - the data dir is 0700 and hyperfleet.db, -wal and -shm are 0600, even in a dir created 0755;
 * - a deleted machine's env is gone from the raw bytes of all three files (a live one's is there,
 *   which shows the scan would find it);
 * - query-string values that look like credentials are masked in request logs;
 * - skopeo runs without the daemon's environment (HYPERFLEET_API_KEY) and still pulls.
 * No VM is booted.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../src/config/config.js";
import { startDaemon, type Daemon } from "../../src/daemon/daemon.js";
import { createLogger } from "../../src/daemon/logger.js";
import { buildBusyboxLayout, push, workDir } from "../images/fixtures.js";
import { openService } from "../images/harness.js";
import { startRegistry } from "../images/registry.js";
import { AUTH, testEnv } from "./helpers.js";

const DB_FILES = ["hyperfleet.db", "hyperfleet.db-wal", "hyperfleet.db-shm"];

let base = "";
let dataDir = "";
let daemon: Daemon | null = null;
const logLines: string[] = [];

function mode(path: string): string {
  return (statSync(path).mode & 0o777).toString(8);
}

/** Every byte SQLite keeps on disk for the store, concatenated. */
function storeBytes(): Buffer {
  return Buffer.concat(DB_FILES.map((f) => join(dataDir, f)).filter(existsSync).map((f) => readFileSync(f)));
}

async function create(name: string, env: Record<string, string>): Promise<string> {
  const r = await daemon!.app.inject({ method: "POST", url: "/machines", headers: { ...AUTH, "content-type": "application/json" }, payload: JSON.stringify({ name, vcpu_count: 1, mem_size_mib: 128, env }) });
  assert.equal(r.statusCode, 201, r.body);
  return (JSON.parse(r.body) as { id: string }).id;
}

before(async () => {
  base = await mkdtemp(join(tmpdir(), "hf-secrets-"));
  // As /var/lib/hyperfleet was: created 0755 by someone else before the daemon's first start.
  dataDir = join(base, "data");
  mkdirSync(dataDir);
  chmodSync(dataDir, 0o755);
  const config = loadConfig(testEnv(dataDir)).unwrap();
  const logger = createLogger("info", { write: (line: string) => void logLines.push(line) });
  daemon = await startDaemon(config, { listen: false, logger });
});

after(async () => {
  await daemon?.close();
  await rm(base, { recursive: true, force: true });
});

describe("the store", () => {
  test("data dir 0700, database, WAL and shared-memory files 0600", async () => {
    await create("perm-check", {});
    assert.equal(mode(dataDir), "700");
    for (const f of DB_FILES) assert.equal(mode(join(dataDir, f)), "600", f);
  });

  test("a deleted machine's env is gone from hyperfleet.db, -wal and -shm", async () => {
    const gone = `gone-${randomBytes(12).toString("hex")}`;
    const kept = `kept-${randomBytes(12).toString("hex")}`;
    const doomed = await create("doomed", { SECRET: gone, OTHER: "x" });
    await create("keeper", { SECRET: kept });
    assert.ok(storeBytes().includes(gone), "the scan sees a machine's env before the delete");
    const del = await daemon!.app.inject({ method: "DELETE", url: `/machines/${doomed}`, headers: AUTH });
    assert.equal(del.statusCode, 204, del.body);

    const bytes = storeBytes();
    assert.ok(bytes.includes(kept), "a live machine's env is still stored");
    assert.ok(!bytes.includes(gone), "the deleted machine's env lingers in the store files");

    await daemon!.close(); // the last connection checkpoints and removes the WAL
    daemon = null;
    assert.ok(!storeBytes().includes(gone), "the deleted machine's env lingers after close");
  });
});

describe("request logs", () => {
  test("credential-looking query values are masked, others kept", async () => {
    const config = loadConfig(testEnv(dataDir)).unwrap();
    daemon = await startDaemon(config, { listen: false, logger: createLogger("info", { write: (line: string) => void logLines.push(line) }) });
    const secrets = ["tok-" + randomBytes(8).toString("hex"), "sig-" + randomBytes(8).toString("hex"), "key-" + randomBytes(8).toString("hex")];
    const urls = [
      `/machines?status=running&token=${secrets[0]}`,
      `/nowhere?X-Amz-Signature=${secrets[1]}&page=2`,
      `/machines?api%5Fkey=${secrets[2]}`,
    ];
    for (const url of urls) await daemon.app.inject({ method: "GET", url, headers: AUTH });
    const text = logLines.join("");
    for (const s of secrets) assert.ok(!text.includes(s), `${s} was logged`);
    assert.match(text, /"url":"\/machines\?status=running&token=\[redacted\]"/);
    assert.match(text, /"url":"\/nowhere\?X-Amz-Signature=\[redacted\]&page=2"/);
  });
});

describe("skopeo", () => {
  test("runs without the daemon's environment and still pulls", async () => {
    const marker = `hf-key-${randomBytes(12).toString("hex")}`;
    const saved = process.env.HYPERFLEET_API_KEY;
    process.env.HYPERFLEET_API_KEY = marker;
    const registry = await startRegistry();
    const fixtures = await workDir();
    const svc = await openService({ insecureRegistries: [registry.host] });
    try {
      await push(await buildBusyboxLayout(fixtures), "bb", `${registry.host}/test/busybox:1`);
      const img = await svc.images.pull(`${registry.host}/test/busybox:1`);
      assert.ok(img.digest.startsWith("sha256:"));
      const skopeo = svc.calls.filter((c) => c.cmd === "skopeo");
      assert.ok(skopeo.length >= 2, "inspect and copy ran");
      for (const c of skopeo) {
        assert.ok(!JSON.stringify(c.env).includes(marker), `skopeo ${c.args[0]} got the daemon's API key`);
        assert.deepEqual(Object.keys(c.env).filter((k) => k.startsWith("HYPERFLEET_")), []);
        assert.equal(c.env.HOME, c.env.TMPDIR, "HOME is the call's private work dir");
      }
    } finally {
      if (saved === undefined) delete process.env.HYPERFLEET_API_KEY;
      else process.env.HYPERFLEET_API_KEY = saved;
      await svc.cleanup();
      await registry.stop();
      await rm(fixtures, { recursive: true, force: true });
    }
  });
});

describe("machine secrets in requests (no VM)", () => {
  async function open(): Promise<Daemon> {
    if (daemon) return daemon;
    const config = loadConfig(testEnv(dataDir)).unwrap();
    daemon = await startDaemon(config, { listen: false, logger: createLogger("info", { write: (line: string) => void logLines.push(line) }) });
    return daemon;
  }
  async function send(method: "POST" | "PUT" | "GET", url: string, payload?: unknown) {
    const d = await open();
    return d.app.inject({ method, url, headers: { ...AUTH, "content-type": "application/json" }, ...(payload !== undefined && { payload: JSON.stringify(payload) }) });
  }
  function refused(r: { statusCode: number; body: string }, status: number, code: string, values: readonly string[]) {
    assert.equal(r.statusCode, status, r.body);
    assert.equal((JSON.parse(r.body) as { error: { code: string } }).error.code, code, r.body);
    for (const v of values) assert.ok(!r.body.includes(v), "the error echoes a secret");
  }
  const marker = () => `sv-${randomBytes(12).toString("hex")}`;

  test("bounds and names: 400 (count, value size, names, NUL) or 413 SECRETS_TOO_LARGE (total), never echoing a value", async () => {
    const m = marker();
    const base = { name: "sec-bad", vcpu_count: 1, mem_size_mib: 128 };
    const many = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`S${i}`, m]));
    refused(await send("POST", "/machines", { ...base, secrets: many }), 400, "INVALID_ARGUMENT", [m]);
    refused(await send("POST", "/machines", { ...base, secrets: { BIG: m + "x".repeat(65_536) } }), 400, "INVALID_ARGUMENT", [m]);
    for (const name of ["1ABC", "A-B", "a.b", "", "x".repeat(129)]) refused(await send("POST", "/machines", { ...base, secrets: { [name]: m } }), 400, "INVALID_ARGUMENT", [m]);
    refused(await send("POST", "/machines", { ...base, secrets: { NUL: `${m}\u0000` } }), 400, "INVALID_ARGUMENT", [m]);
    const total = Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`T${i}`, m + "y".repeat(60_000)]));
    refused(await send("POST", "/machines", { ...base, secrets: total }), 413, "SECRETS_TOO_LARGE", [m]);
    assert.equal((await send("GET", "/machines")).body.includes("sec-bad"), false, "a refused create left a machine");
    const id = (JSON.parse((await send("POST", "/machines", { ...base, name: "sec-put" })).body) as { id: string }).id;
    refused(await send("PUT", `/machines/${id}/secrets`, { secrets: total }), 413, "SECRETS_TOO_LARGE", [m]);
    refused(await send("PUT", `/machines/${id}/secrets`, { secrets: { OK: m }, extra: 1 }), 400, "INVALID_ARGUMENT", [m]);
    refused(await send("PUT", "/machines/vm_nope/secrets", { secrets: { OK: m } }), 404, "MACHINE_NOT_FOUND", [m]);
    assert.ok(!logLines.join("").includes(m), "a refused secret was logged");
  });

  test("stored sealed: names shown, values in no answer, log or store byte; a rotation replaces them", async () => {
    const [a, b, c] = [marker(), marker(), marker()];
    const env = marker();
    const r = await send("POST", "/machines", { name: "sec-store", vcpu_count: 1, mem_size_mib: 128, env: { E: env }, secrets: { B_NAME: b, A_NAME: a } });
    assert.equal(r.statusCode, 201, r.body);
    const id = (JSON.parse(r.body) as { id: string }).id;
    assert.deepEqual((JSON.parse(r.body) as { secret_names: string[] }).secret_names, ["A_NAME", "B_NAME"]);
    const put = await send("PUT", `/machines/${id}/secrets`, { secrets: { C_NAME: c } });
    assert.equal(put.statusCode, 200, put.body);
    assert.deepEqual((JSON.parse(put.body) as { secret_names: string[] }).secret_names, ["C_NAME"]);
    const got = await send("GET", `/machines/${id}`);
    assert.deepEqual((JSON.parse(got.body) as { secret_names: string[] }).secret_names, ["C_NAME"]);
    const bodies = [r.body, put.body, got.body, (await send("GET", "/machines")).body, (await send("GET", `/machines/${id}/logs`)).body];
    for (const v of [a, b, c]) {
      assert.ok(!bodies.some((x) => x.includes(v)), "an answer holds a secret");
      assert.ok(!logLines.join("").includes(v), "the log holds a secret");
    }
    const bytes = storeBytes();
    assert.ok(bytes.includes(env), "the scan sees the machine's plain env");
    for (const v of [a, b, c]) assert.ok(!bytes.includes(v), "a secret is in the store's bytes");
  });
});
