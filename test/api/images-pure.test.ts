/**
 * The pure parts behind the image API: what the main process runs (Docker's rules for
 * Entrypoint/Cmd overrides), exec defaults, the guest's status line, tail offsets, and the
 * registry configuration variables.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { loadConfig } from "../../src/config/config.js";
import { DEFAULT_PATH, execDefaults, mainProcessSpec, parseMainStatus, tailOffset } from "../../src/workload/run-spec.js";
import type { ImageRunConfig } from "../../src/core/machine.js";

const IMG: ImageRunConfig = { entrypoint: ["/entry"], cmd: ["arg1", "arg2"], env: { PATH: "/img/bin", A: "image" }, workingDir: "/app", user: "1000:1000", exposedPorts: [] };
const rec = (o: Partial<Parameters<typeof mainProcessSpec>[0]> = {}) => ({ imageRef: "x", imageConfig: IMG, env: {}, cmd: null, entrypoint: null, workdir: null, user: null, ...o });

test("main process argv: Docker's rules for entrypoint and cmd overrides", () => {
  assert.deepEqual(mainProcessSpec(rec())?.argv, ["/entry", "arg1", "arg2"]);
  assert.deepEqual(mainProcessSpec(rec({ cmd: ["other"] }))?.argv, ["/entry", "other"], "cmd replaces Cmd only");
  assert.deepEqual(mainProcessSpec(rec({ entrypoint: ["/bin/sh", "-c"] }))?.argv, ["/bin/sh", "-c"], "an entrypoint override drops the image's Cmd");
  assert.deepEqual(mainProcessSpec(rec({ entrypoint: ["/bin/sh", "-c"], cmd: ["echo hi"] }))?.argv, ["/bin/sh", "-c", "echo hi"]);
  assert.deepEqual(mainProcessSpec(rec({ entrypoint: [] }))?.argv, undefined, "entrypoint [] and no cmd: nothing to run");
  assert.deepEqual(mainProcessSpec(rec({ entrypoint: [], cmd: ["/bin/app"] }))?.argv, ["/bin/app"]);
  assert.equal(mainProcessSpec(rec({ imageConfig: { ...IMG, entrypoint: [], cmd: [] } })), null, "an image without a command has no main process");
  assert.equal(mainProcessSpec(rec({ imageRef: null, imageConfig: null })), null);
  assert.equal(mainProcessSpec(rec({ imageConfig: null })), null, "not pulled yet");
});

test("env, cwd and user: image first, machine on top; the request wins in exec", () => {
  const s = mainProcessSpec(rec({ env: { A: "machine", B: "b" } }))!;
  assert.deepEqual(s.env, { PATH: "/img/bin", A: "machine", B: "b" });
  assert.equal(s.cwd, "/app");
  assert.equal(s.user, "1000:1000");
  const o = mainProcessSpec(rec({ workdir: "/w", user: "0" }))!;
  assert.equal(o.cwd, "/w");
  assert.equal(o.user, "0");
  // Docker's PATH when the image sets none; nothing for WorkingDir/User it does not set.
  const bare = execDefaults(rec({ imageConfig: { ...IMG, env: {}, workingDir: null, user: null } }));
  assert.deepEqual(bare, { env: { PATH: DEFAULT_PATH } });
  // A machine without an image keeps the plain behaviour: its env, nothing else.
  assert.deepEqual(execDefaults(rec({ imageRef: null, imageConfig: null, env: { X: "1" } })), { env: { X: "1" } });
});

test("the guest's main process status line", () => {
  assert.deepEqual(parseMainStatus("running 42 1700000000000\n"), { status: "running", pid: 42, exitCode: null, signal: null, startedAt: "2023-11-14T22:13:20.000Z", exitedAt: null, error: null });
  assert.deepEqual(parseMainStatus("exited 3 0 1700000000000\n"), { status: "exited", pid: null, exitCode: 3, signal: null, startedAt: null, exitedAt: "2023-11-14T22:13:20.000Z", error: null });
  assert.equal(parseMainStatus("exited -1 9 1700000000000\n")?.signal, 9);
  assert.equal(parseMainStatus("exited -1 9 1700000000000\n")?.exitCode, null);
  for (const bad of ["", "running", "running x 1", "exited 1 1", "done 0 0 0", "exited a b c"]) assert.equal(parseMainStatus(bad), null, bad);
});

test("tail offsets: last N lines, a final line without newline counts", () => {
  const b = Buffer.from("a\nb\nc\n");
  assert.equal(b.subarray(tailOffset(b, 1)).toString(), "c\n");
  assert.equal(b.subarray(tailOffset(b, 2)).toString(), "b\nc\n");
  assert.equal(b.subarray(tailOffset(b, 9)).toString(), "a\nb\nc\n");
  assert.equal(b.subarray(tailOffset(b, 0)).toString(), "");
  const partial = Buffer.from("a\nb\nc");
  assert.equal(partial.subarray(tailOffset(partial, 1)).toString(), "c");
  assert.equal(tailOffset(Buffer.alloc(0), 3), 0);
});

test("config: registries, mirrors, agent binary", () => {
  const c = loadConfig({
    HYPERFLEET_DATA_DIR: "/d",
    HYPERFLEET_INSECURE_REGISTRIES: "127.0.0.1:5000, registry.lan:5000 ,[::1]:5000",
    HYPERFLEET_REGISTRY_MIRRORS: "docker.io=mirror.local:5000,docker.io=m2.local/hub,quay.io=q.lan",
    HYPERFLEET_OCI_MAX_CACHE_SIZE: "1048576",
  }).unwrap();
  assert.deepEqual(c.oci.insecureRegistries, ["127.0.0.1:5000", "registry.lan:5000", "[::1]:5000"]);
  assert.deepEqual(c.oci.mirrors, { "docker.io": ["mirror.local:5000", "m2.local/hub"], "quay.io": ["q.lan"] });
  assert.equal(c.oci.maxCacheSize, 1048576);
  assert.equal(c.oci.cacheDir, "/d/images");
  assert.match(c.oci.agentBinary, /\/guest\/build\/hf-agent$/);
  assert.equal(loadConfig({ HYPERFLEET_AGENT_BINARY: "/opt/hf-agent" }).unwrap().oci.agentBinary, "/opt/hf-agent");
  const bad = loadConfig({ HYPERFLEET_INSECURE_REGISTRIES: "http://x:5000", HYPERFLEET_REGISTRY_MIRRORS: "docker.io", HYPERFLEET_OCI_CACHE_DIR: "/a:b" });
  assert.equal(bad.ok, false);
  if (!bad.ok) {
    for (const v of ["HYPERFLEET_INSECURE_REGISTRIES", "HYPERFLEET_REGISTRY_MIRRORS", "HYPERFLEET_OCI_CACHE_DIR"]) assert.match(bad.error.message, new RegExp(v));
  }
});
