/**
 * `npm run setup -- --firecracker` (scripts/install-firecracker.ts), offline: a loopback HTTP server
 * serves a release-shaped tarball built here. The right checksum installs (into a temporary
 * prefix); a wrong one, a cut-short download, an HTTP error or a server that is down install
 * nothing and say why.
 */
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { after, before, test } from "node:test";
import {
  FIRECRACKER_VERSION, InstallError, RELEASE_SHA256, installFirecracker, installedVersion, releaseArch, releaseAsset,
} from "../../scripts/install-firecracker.js";

const dir = mkdtempSync(join(tmpdir(), "hf-fcinst-"));
const asset = releaseAsset(FIRECRACKER_VERSION, "x86_64");
const tarball = join(dir, asset.tarball);
let bytes: Buffer;
let sha: string;
let server: Server;
let base = "";
let downPort = 0;
let prefixes = 0;
const newPrefix = () => join(dir, `prefix${prefixes++}`, "bin");

/** A tarball shaped like the release: release-<v>-<arch>/{firecracker,jailer,seccompiler-bin}-<v>-<arch>. */
function buildTarball(): void {
  const src = join(dir, "src", `release-${FIRECRACKER_VERSION}-x86_64`);
  mkdirSync(src, { recursive: true });
  writeFileSync(join(dir, "src", asset.firecracker), `#!/bin/sh\necho "Firecracker ${FIRECRACKER_VERSION}"\n`, { mode: 0o755 });
  writeFileSync(join(dir, "src", asset.jailer), `#!/bin/sh\necho "Jailer ${FIRECRACKER_VERSION}"\n`, { mode: 0o755 });
  writeFileSync(join(src, `seccompiler-bin-${FIRECRACKER_VERSION}-x86_64`), "not installed\n", { mode: 0o755 });
  // Padding, so "half the body" is many TCP segments.
  writeFileSync(join(src, "padding"), Buffer.alloc(512 * 1024, 7));
  execFileSync("tar", ["-czf", tarball, "-C", join(dir, "src"), `release-${FIRECRACKER_VERSION}-x86_64`]);
  bytes = readFileSync(tarball);
  sha = createHash("sha256").update(bytes).digest("hex");
}

function send(res: ServerResponse, body: Buffer, declared = body.length): void {
  res.writeHead(200, { "content-type": "application/octet-stream", "content-length": declared });
  res.end(body);
}

before(async () => {
  buildTarball();
  server = createServer((req, res) => {
    const path = req.url ?? "";
    if (path === `/ok/${FIRECRACKER_VERSION}/${asset.tarball}`) return send(res, bytes);
    if (path === `/redirect/${FIRECRACKER_VERSION}/${asset.tarball}`) {
      res.writeHead(302, { location: `/ok/${FIRECRACKER_VERSION}/${asset.tarball}` });
      return res.end();
    }
    if (path === `/short/${FIRECRACKER_VERSION}/${asset.tarball}`) {
      // Promises the whole tarball, sends half, and hangs up.
      res.writeHead(200, { "content-length": bytes.length });
      res.write(bytes.subarray(0, bytes.length >> 1), () => res.socket?.destroy());
      return;
    }
    if (path === `/half/${FIRECRACKER_VERSION}/${asset.tarball}`) return send(res, bytes.subarray(0, bytes.length >> 1));
    res.writeHead(404).end("not found");
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  // A port nothing listens on: taken, then let go.
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
  downPort = (probe.address() as AddressInfo).port;
  await new Promise((r) => probe.close(r));
});
after(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

const refused = (reason: InstallError["reason"], text: RegExp) => (e: unknown) => e instanceof InstallError && e.reason === reason && text.test(e.message);

/** Nothing at all was installed: the prefix was not even made, or holds nothing. */
function nothingIn(prefix: string): void {
  assert.ok(!existsSync(prefix) || readdirSync(prefix).length === 0, `${prefix} holds ${existsSync(prefix) ? readdirSync(prefix).join(", ") : ""}`);
}

test("the pinned release: v1.16.1, a SHA-256 per architecture, the release's asset and member names", () => {
  assert.equal(FIRECRACKER_VERSION, "v1.16.1");
  assert.match(RELEASE_SHA256.x86_64, /^[0-9a-f]{64}$/);
  assert.match(RELEASE_SHA256.aarch64, /^[0-9a-f]{64}$/);
  assert.notEqual(RELEASE_SHA256.x86_64, RELEASE_SHA256.aarch64);
  assert.deepEqual(releaseAsset("v1.16.1", "aarch64"), {
    tarball: "firecracker-v1.16.1-aarch64.tgz",
    firecracker: "release-v1.16.1-aarch64/firecracker-v1.16.1-aarch64",
    jailer: "release-v1.16.1-aarch64/jailer-v1.16.1-aarch64",
  });
  assert.equal(releaseArch("x64"), "x86_64");
  assert.equal(releaseArch("arm64"), "aarch64");
  assert.equal(releaseArch("ia32"), null);
});

test("the right checksum installs firecracker and jailer (0755, the archive's bytes) and nothing else", async () => {
  const prefix = newPrefix();
  const lines: string[] = [];
  const r = await installFirecracker({ arch: "x86_64", prefix, sha256: sha, urlBase: `${base}/ok`, log: (l) => lines.push(l) });
  assert.deepEqual(r, { firecracker: join(prefix, "firecracker"), jailer: join(prefix, "jailer"), sha256: sha, source: `${base}/ok/${FIRECRACKER_VERSION}/${asset.tarball}` });
  assert.deepEqual(readdirSync(prefix).sort(), ["firecracker", "jailer"]);
  for (const f of ["firecracker", "jailer"]) assert.equal(statSync(join(prefix, f)).mode & 0o777, 0o755);
  assert.equal(readFileSync(join(prefix, "firecracker"), "utf8"), readFileSync(join(dir, "src", asset.firecracker), "utf8"));
  assert.equal(await installedVersion(prefix), FIRECRACKER_VERSION);
  assert.ok(lines.some((l) => l.includes(sha) && l.includes("matches")), lines.join("\n"));
});

test("a redirect (GitHub answers with one) is followed", async () => {
  const prefix = newPrefix();
  await installFirecracker({ arch: "x86_64", prefix, sha256: sha, urlBase: `${base}/redirect` });
  assert.deepEqual(readdirSync(prefix).sort(), ["firecracker", "jailer"]);
});

test("a wrong checksum refuses and installs nothing", async () => {
  const prefix = newPrefix();
  const wrong = sha.replace(/^./, (c) => (c === "0" ? "1" : "0"));
  await assert.rejects(installFirecracker({ arch: "x86_64", prefix, sha256: wrong, urlBase: `${base}/ok` }), refused("checksum-mismatch", new RegExp(`${sha}.*pinned to ${wrong}.*refusing`)));
  nothingIn(prefix);
});

test("the real pinned checksum refuses this stand-in tarball: the pin is what is checked", async () => {
  const prefix = newPrefix();
  await assert.rejects(installFirecracker({ arch: "x86_64", prefix, urlBase: `${base}/ok` }), refused("checksum-mismatch", new RegExp(RELEASE_SHA256.x86_64)));
  nothingIn(prefix);
});

test("a download cut short refuses and installs nothing (connection dropped, or a consistent but short body)", async () => {
  const p1 = newPrefix();
  await assert.rejects(installFirecracker({ arch: "x86_64", prefix: p1, sha256: sha, urlBase: `${base}/short` }), refused("download-failed", /broke off|cut short/));
  nothingIn(p1);
  const p2 = newPrefix();
  await assert.rejects(installFirecracker({ arch: "x86_64", prefix: p2, sha256: sha, urlBase: `${base}/half` }), refused("checksum-mismatch", /refusing/));
  nothingIn(p2);
});

test("an HTTP error and a server that is down say so, and how to install offline", async () => {
  const p1 = newPrefix();
  await assert.rejects(installFirecracker({ arch: "x86_64", prefix: p1, sha256: sha, urlBase: `${base}/missing` }), refused("download-failed", /HTTP 404/));
  const p2 = newPrefix();
  await assert.rejects(
    installFirecracker({ arch: "x86_64", prefix: p2, sha256: sha, urlBase: `http://127.0.0.1:${downPort}` }),
    refused("download-failed", /cannot download .* could not be reached.*--archive <file>/),
  );
  nothingIn(p1);
  nothingIn(p2);
});

test("--archive installs from a tarball on this host, checked the same way", async () => {
  const prefix = newPrefix();
  await installFirecracker({ arch: "x86_64", prefix, sha256: sha, archive: tarball });
  assert.equal(await installedVersion(prefix), FIRECRACKER_VERSION);
  const p2 = newPrefix();
  await assert.rejects(installFirecracker({ arch: "x86_64", prefix: p2, archive: tarball }), refused("checksum-mismatch", /refusing/));
  nothingIn(p2);
});

test("the command (what setup runs) exits 1 with the reason on stderr, installing nothing", async () => {
  const script = new URL("../../scripts/install-firecracker.ts", import.meta.url).pathname;
  const run = (args: string[]) => promisify(execFile)(process.execPath, ["--import", "tsx", script, ...args]).then(
    () => ({ code: 0, stderr: "" }),
    (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
  );
  const p1 = newPrefix();
  const down = await run(["--prefix", p1, "--url-base", `http://127.0.0.1:${downPort}`]);
  assert.equal(down.code, 1);
  assert.match(down.stderr, /firecracker: cannot download .* could not be reached/);
  nothingIn(p1);
  const p2 = newPrefix();
  const mismatch = await run(["--prefix", p2, "--archive", tarball]);
  assert.equal(mismatch.code, 1);
  assert.match(mismatch.stderr, new RegExp(`${sha}.*pinned to ${RELEASE_SHA256[releaseArch() ?? "x86_64"]}.*refusing`));
  nothingIn(p2);
});
