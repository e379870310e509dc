/** Manifests, image config, eviction choice, disk sizing and skopeo error wording (pure). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { describePlatforms, digestOf, parseManifest, pickPlatform } from "../../src/images/manifest.js";
import { parseImageConfig } from "../../src/images/config.js";
import { cacheBytes, planEviction, type EvictionCandidate } from "../../src/images/lru.js";
import { imageMkfsArgs, minimumSizeMib, planDisk } from "../../src/images/disk-plan.js";
import { classifySkopeoError } from "../../src/images/skopeo-errors.js";
import { isHyperfleetError } from "../../src/core/errors.js";

const d = (c: string) => `sha256:${c.repeat(64)}`;

test("an index is told from an image; linux/amd64 is picked, attestations and variants considered", () => {
  const index = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.docker.distribution.manifest.list.v2+json",
    manifests: [
      { mediaType: "m", digest: d("1"), size: 1, platform: { os: "linux", architecture: "arm64", variant: "v8" } },
      { mediaType: "m", digest: d("2"), size: 1, platform: { os: "linux", architecture: "amd64", variant: "v3" } },
      { mediaType: "m", digest: d("3"), size: 1, platform: { os: "linux", architecture: "amd64" } },
      { mediaType: "m", digest: d("4"), size: 1, platform: { os: "unknown", architecture: "unknown" } },
    ],
  }));
  const m = parseManifest(index);
  assert.equal(m.kind, "index");
  if (m.kind !== "index") return;
  assert.equal(pickPlatform(m.manifests)?.digest, d("3"));
  assert.equal(pickPlatform(m.manifests.slice(0, 1)), null);
  assert.equal(describePlatforms(m.manifests), "linux/arm64/v8, linux/amd64/v3, linux/amd64");
  assert.match(digestOf(index), /^sha256:[a-f0-9]{64}$/);

  const img = parseManifest(Buffer.from(JSON.stringify({ schemaVersion: 2, config: { digest: d("a"), size: 5 }, layers: [{ digest: d("b"), size: 7 }] })));
  assert.equal(img.kind, "image");
  assert.throws(() => parseManifest(Buffer.from('{"schemaVersion":1}')), (e: unknown) => isHyperfleetError(e, "IMAGE_INVALID"));
  assert.throws(() => parseManifest(Buffer.from("nope")), (e: unknown) => isHyperfleetError(e, "IMAGE_INVALID"));
});

test("the image config becomes a typed ImageConfig", () => {
  const { platform, config } = parseImageConfig(JSON.stringify({
    os: "linux",
    architecture: "amd64",
    config: {
      Entrypoint: ["/entry"],
      Cmd: ["serve", "--port", "80"],
      Env: ["PATH=/bin", "A=1=2", "UNSET", "A=3"],
      WorkingDir: "/srv",
      User: "app:app",
      ExposedPorts: { "80/tcp": {}, "53/udp": {}, "9000": {}, "bogus/tcp": {} },
      Labels: { "org.opencontainers.image.title": "x" },
      StopSignal: "SIGQUIT",
    },
  }));
  assert.deepEqual(platform, { os: "linux", architecture: "amd64", variant: null });
  assert.deepEqual(config, {
    entrypoint: ["/entry"],
    cmd: ["serve", "--port", "80"],
    env: { PATH: "/bin", A: "3" },
    workingDir: "/srv",
    user: "app:app",
    exposedPorts: [{ port: 53, protocol: "udp" }, { port: 80, protocol: "tcp" }, { port: 9000, protocol: "tcp" }],
    labels: { "org.opencontainers.image.title": "x" },
    stopSignal: "SIGQUIT",
  });
  const empty = parseImageConfig('{"os":"linux","architecture":"amd64"}').config;
  assert.deepEqual(empty, { entrypoint: [], cmd: [], env: {}, workingDir: null, user: null, exposedPorts: [], labels: {}, stopSignal: null });
});

test("eviction: least recently used first, never in use, shared blobs counted once", () => {
  const shared = { digest: d("s"), size: 100 };
  const e = (key: string, lastUsedAt: number, inUse = false): EvictionCandidate => ({ key, lastUsedAt, diskBytes: 50, blobs: [shared, { digest: d(key), size: 10 }], inUse });
  const entries = [e("a", 3), e("b", 1, true), e("c", 2), e("d", 4)];
  assert.equal(cacheBytes(entries), 4 * 60 + 100);
  assert.deepEqual(planEviction(entries, 1000), { evict: [], bytesAfter: 340, overLimit: false });
  assert.deepEqual(planEviction(entries, 220), { evict: ["c", "a"], bytesAfter: 220, overLimit: false });
  // Everything unused goes, the in-use entry stays although the cache is still too big.
  assert.deepEqual(planEviction(entries, 100), { evict: ["c", "a", "d"], bytesAfter: 160, overLimit: true });
});

test("disk sizing: minimum fits the data, auto adds max(50 %, 64 MiB), explicit too-small is refused", () => {
  const MiB = 1 << 20;
  const small = { dataBytes: 2 * MiB, inodes: 500 };
  const min = minimumSizeMib(small);
  assert.ok(min >= 8 && min < 16, `min ${min}`);
  assert.equal(planDisk(small).plan?.sizeMib, min + 64);
  const big = { dataBytes: 400 * MiB, inodes: 20_000 };
  const bigMin = minimumSizeMib(big);
  assert.ok(bigMin > 400 && bigMin < 460, `bigMin ${bigMin}`);
  assert.equal(planDisk(big).plan?.sizeMib, Math.ceil(bigMin * 1.5));
  assert.deepEqual(planDisk(big, 100), { plan: null, minimumMib: bigMin });
  const ok = planDisk(big, 1024).plan!;
  assert.equal(ok.sizeMib, 1024);
  assert.ok(ok.inodeCount >= 30_000);
  const args = imageMkfsArgs({ image: "/o/d.ext4", sourceDir: "/o/rootfs", plan: ok, uuid: "u" });
  assert.deepEqual(args.slice(-4), ["-d", "/o/rootfs", "/o/d.ext4", "1024M"]);
  assert.ok(args.includes("root_owner=0:0,lazy_itable_init=0,lazy_journal_init=0"));
});

test("skopeo's words map to our codes", () => {
  const cases: [string, string][] = [
    ['time="x" level=fatal msg="Error parsing image name \\"docker://127.0.0.1:1/a:1\\": reading manifest 1 in 127.0.0.1:1/a: manifest unknown: manifest unknown"', "IMAGE_NOT_FOUND"],
    ['level=fatal msg="Error parsing image name: reading manifest 1 in x/a: unauthorized: authentication required"', "IMAGE_UNAUTHORIZED"],
    ['level=fatal msg="Error parsing image name \\"docker://127.0.0.1:45124/test/bb:2\\": pinging container registry 127.0.0.1:45124: Get \\"http://127.0.0.1:45124/v2/\\": dial tcp 127.0.0.1:45124: connect: connection refused"', "IMAGE_REGISTRY_UNREACHABLE"],
    ['level=fatal msg="pinging container registry r: Get \\"https://r/v2/\\": http: server gave HTTP response to HTTPS client"', "IMAGE_REGISTRY_UNREACHABLE"],
    ["write /c/blobs/sha256/x: no space left on device", "HOST_DISK_FULL"],
    ['level=fatal msg="choosing image instance: no image found in image index for architecture amd64, variant \\"\\", OS linux"', "IMAGE_PLATFORM_UNSUPPORTED"],
    ["something else entirely", "IMAGE_PULL_FAILED"],
  ];
  for (const [stderr, code] of cases) assert.equal(classifySkopeoError(stderr, "img", "reg").code, code, stderr);
  const e = classifySkopeoError('msg="x: http: server gave HTTP response to HTTPS client"', "img", "127.0.0.1:5000");
  assert.match(e.message, /insecureRegistries/);
});
