import { test } from "node:test";
import assert from "node:assert/strict";
import { findKernelDependency, parseMadison, parseStanza } from "../../src/assets/apt-parse.js";
import { releaseOf } from "../../src/assets/kernel.js";

const SHOW = `Package: linux-image-cloud-amd64
Source: linux-signed-amd64 (6.1.192+2)
Version: 6.1.192-2
Provides: linux-latest-modules-6.1.0-56-cloud-amd64, wireguard-modules (= 1.0.0)
Depends: linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)
Description: Linux for x86-64 cloud (meta-package)
 This package depends on the latest Linux kernel
 for cloud platforms.

Package: linux-image-cloud-amd64
Version: 6.1.176-1
Depends: linux-image-6.1.0-50-cloud-amd64 (= 6.1.176-1)
`;

test("apt: first stanza only, continuation lines joined", () => {
  const f = parseStanza(SHOW);
  assert.equal(f.Version, "6.1.192-2");
  assert.equal(f.Depends, "linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)");
  assert.equal(f.Description, "Linux for x86-64 cloud (meta-package)\nThis package depends on the latest Linux kernel\nfor cloud platforms.");
});

test("apt: madison lists downloadable versions of exactly that package", () => {
  const out = ` linux-image-cloud-amd64 |  6.1.192-2 | http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
 linux-image-cloud-amd64 |  6.1.176-1 | http://deb.debian.org/debian bookworm/main amd64 Packages
 linux-image-cloud-amd64-dbg |  6.1.176-1 | http://deb.debian.org/debian bookworm/main amd64 Packages
`;
  assert.deepEqual(parseMadison(out, "linux-image-cloud-amd64"), ["6.1.192-2", "6.1.176-1"]);
  assert.deepEqual(parseMadison("", "x"), []);
});

test("apt: the concrete kernel package is found among the meta package's dependencies", () => {
  assert.deepEqual(findKernelDependency("linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)"), { name: "linux-image-6.1.0-56-cloud-amd64", version: "6.1.192-2" });
  assert.deepEqual(findKernelDependency("kmod, linux-base (>= 4.3~) | foo, linux-image-6.1.0-9-cloud-amd64"), { name: "linux-image-6.1.0-9-cloud-amd64" });
  assert.equal(findKernelDependency("kmod, initramfs-tools"), null);
  assert.equal(releaseOf("linux-image-6.1.0-56-cloud-amd64"), "6.1.0-56-cloud-amd64");
  assert.throws(() => releaseOf("busybox-static"), /linux-image/);
});
