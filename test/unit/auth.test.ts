import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ApiKeyVerifier, generateApiKey, hashApiKey, isPublicPath } from "../../src/api/auth.js";
import { setupApiKeys } from "../../src/daemon/api-keys.js";
import { openStore } from "../../src/store/index.js";

test("hashApiKey is hex sha256", () => {
  assert.equal(hashApiKey("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
});

test("generated keys are long, random and prefixed", () => {
  const a = generateApiKey();
  assert.match(a, /^hf_[A-Za-z0-9_-]{43}$/);
  assert.notEqual(a, generateApiKey());
});

test("the verifier accepts any configured key and nothing else", () => {
  const v = new ApiKeyVerifier(["key-one-0123456789", "key-two-0123456789"].map(hashApiKey));
  assert.ok(v.verify("key-one-0123456789"));
  assert.ok(v.verify("key-two-0123456789"));
  for (const bad of ["", "key-one", "key-one-0123456789 ", "KEY-ONE-0123456789", "x".repeat(10_000)]) assert.ok(!v.verify(bad), bad);
  assert.ok(!new ApiKeyVerifier([]).verify("anything"));
});

test("public paths", () => {
  for (const p of ["/health", "/health?x=1", "/docs", "/docs/", "/docs/static/index.html", "/openapi.json"]) assert.ok(isPublicPath(p), p);
  for (const p of ["/machines", "/healthz", "/docsx", "/openapi.json/x", "/"]) assert.ok(!isPublicPath(p), p);
});

test("setupApiKeys: generated once, printed once, stored hashed; then read from the store", async () => {
  const dir = mkdtempSync(join(tmpdir(), "hf-auth-"));
  try {
    const path = join(dir, "db.sqlite");
    const store = await openStore({ path });
    const printed: string[] = [];
    const first = await setupApiKeys({ enabled: true, apiKeys: [] }, store.apiKeys, (t) => printed.push(t));
    assert.equal(first.source, "generated");
    assert.equal(printed.length, 1);
    const key = /hf_[A-Za-z0-9_-]{43}/.exec(printed[0]!)?.[0];
    assert.ok(key);
    assert.ok(first.verifier?.verify(key));

    const second = await setupApiKeys({ enabled: true, apiKeys: [] }, store.apiKeys, (t) => printed.push(t));
    assert.equal(second.source, "store");
    assert.equal(printed.length, 1, "the key is printed only once");
    assert.ok(second.verifier?.verify(key));
    await store.close();
    // The key itself never reaches the database file.
    assert.ok(!readFileSync(path).includes(Buffer.from(key)));

    const again = await openStore({ path });
    const env = await setupApiKeys({ enabled: true, apiKeys: ["env-key-0123456789ab"] }, again.apiKeys, () => assert.fail("no print"));
    assert.equal(env.source, "environment");
    assert.ok(env.verifier?.verify("env-key-0123456789ab"));
    assert.ok(!env.verifier?.verify(key), "environment keys replace stored ones");
    const off = await setupApiKeys({ enabled: false, apiKeys: [] }, again.apiKeys, () => assert.fail("no print"));
    assert.equal(off.verifier, null);
    await again.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
