/** Secrets at rest, pure and on the file system: the AES-256-GCM box, the key file, HYPERFLEET_SECRET_KEY. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isHyperfleetError } from "../../src/core/errors.js";
import { openSecret, sealSecret } from "../../src/host/secret-box.js";
import { loadSecretKey } from "../../src/host/secret-key.js";
import { loadConfig } from "../../src/config/config.js";

const key = randomBytes(32);
const VALUE = "hunter2-ü-" + randomBytes(8).toString("hex");

function unreadable(fn: () => unknown): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isHyperfleetError(e, "SECRETS_UNREADABLE"), String(e));
    assert.ok(!e.message.includes(VALUE), "the message holds the value");
    return true;
  });
}

test("seal then open gives the value back; the sealed form shows neither value nor plain bytes", () => {
  const sealed = sealSecret(key, "vm_1", "TOKEN", VALUE);
  assert.match(sealed, /^v1\.[A-Za-z0-9+/]+=*$/);
  assert.ok(!sealed.includes(VALUE) && !Buffer.from(sealed).includes(Buffer.from(VALUE)));
  assert.equal(openSecret(key, "vm_1", "TOKEN", sealed), VALUE);
  assert.equal(openSecret(key, "vm_1", "E", sealSecret(key, "vm_1", "E", "")), "");
});

test("a random nonce per value: the same value seals differently each time", () => {
  const a = sealSecret(key, "vm_1", "TOKEN", VALUE);
  const b = sealSecret(key, "vm_1", "TOKEN", VALUE);
  assert.notEqual(a, b);
  assert.notEqual(Buffer.from(a.slice(3), "base64").subarray(0, 12).toString("hex"), Buffer.from(b.slice(3), "base64").subarray(0, 12).toString("hex"));
});

test("tampering, another key, machine or name: SECRETS_UNREADABLE, never a crash or a wrong value", () => {
  const sealed = sealSecret(key, "vm_1", "TOKEN", VALUE);
  const raw = Buffer.from(sealed.slice(3), "base64");
  for (const at of [0, 12, raw.length - 1]) {
    const t = Buffer.from(raw);
    t[at]! ^= 0x01;
    unreadable(() => openSecret(key, "vm_1", "TOKEN", "v1." + t.toString("base64")));
  }
  unreadable(() => openSecret(randomBytes(32), "vm_1", "TOKEN", sealed));
  unreadable(() => openSecret(key, "vm_2", "TOKEN", sealed));
  unreadable(() => openSecret(key, "vm_1", "OTHER", sealed));
  unreadable(() => openSecret(key, "vm_1", "TOKEN", "v1." + raw.subarray(0, 20).toString("base64")));
  unreadable(() => openSecret(key, "vm_1", "TOKEN", "v2." + raw.toString("base64")));
  unreadable(() => openSecret(key, "vm_1", "TOKEN", ""));
});

test("the key file: generated once, 0600, 64 hex digits; reused; a looser mode is tightened", () => {
  const dir = mkdtempSync(join(tmpdir(), "hf-key-"));
  try {
    const first = loadSecretKey(null, dir);
    assert.equal(first.source, "generated");
    const path = join(dir, "secret.key");
    assert.equal((statSync(path).mode & 0o777).toString(8), "600");
    assert.match(readFileSync(path, "utf8"), /^[0-9a-f]{64}\n$/);
    const again = loadSecretKey(null, dir);
    assert.equal(again.source, "file");
    assert.ok(again.key.equals(first.key));
    chmodSync(path, 0o644);
    assert.ok(loadSecretKey(null, dir).key.equals(first.key));
    assert.equal((statSync(path).mode & 0o777).toString(8), "600");
    assert.deepEqual(readdirSync(dir), ["secret.key"], "no temp file is left");
    const env = randomBytes(32);
    const fromEnv = loadSecretKey(env.toString("hex"), dir);
    assert.equal(fromEnv.source, "env");
    assert.ok(fromEnv.key.equals(env));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a key file that is not 64 hex digits stops the daemon with CONFIG_INVALID", () => {
  const dir = mkdtempSync(join(tmpdir(), "hf-key-"));
  try {
    writeFileSync(join(dir, "secret.key"), "short\n", { mode: 0o600 });
    assert.throws(() => loadSecretKey(null, dir), (e: unknown) => isHyperfleetError(e, "CONFIG_INVALID") && /64 hex digits/.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("HYPERFLEET_SECRET_KEY: 64 hex digits or base64 of 32 bytes; anything else is CONFIG_INVALID without echoing it", () => {
  const bytes = randomBytes(32);
  const hex = loadConfig({ HYPERFLEET_SECRET_KEY: bytes.toString("hex").toUpperCase() }).unwrap();
  assert.equal(hex.secretKey, bytes.toString("hex"));
  assert.equal(loadConfig({ HYPERFLEET_SECRET_KEY: bytes.toString("base64") }).unwrap().secretKey, bytes.toString("hex"));
  assert.equal(loadConfig({}).unwrap().secretKey, null);
  for (const bad of ["abc123", randomBytes(31).toString("hex"), randomBytes(16).toString("base64"), "z".repeat(64), randomBytes(33).toString("base64")]) {
    const r = loadConfig({ HYPERFLEET_SECRET_KEY: bad });
    assert.ok(!r.ok, bad);
    assert.equal(r.error.code, "CONFIG_INVALID");
    assert.match(r.error.message, /HYPERFLEET_SECRET_KEY must be 32 bytes as 64 hex digits or 44 characters of base64/);
    assert.ok(!r.error.message.includes(bad), "the message echoes the key");
  }
});
