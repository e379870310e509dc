/** Image reference parsing and Docker Hub normalization (pure). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { formatImageRef, parseImageRef, pinned } from "../../src/images/reference.js";
import { isHyperfleetError } from "../../src/core/errors.js";

const D = `sha256:${"ab".repeat(32)}`;

test("short names normalize like Docker's", () => {
  const cases: [string, string][] = [
    ["alpine", "docker.io/library/alpine:latest"],
    ["alpine:3.20", "docker.io/library/alpine:3.20"],
    ["user/app", "docker.io/user/app:latest"],
    ["index.docker.io/user/app:1", "docker.io/user/app:1"],
    ["docker.io/alpine", "docker.io/library/alpine:latest"],
    ["ghcr.io/org/team/app:v1.2.3", "ghcr.io/org/team/app:v1.2.3"],
    ["localhost/app", "localhost/app:latest"],
    ["127.0.0.1:5000/test/busybox:1", "127.0.0.1:5000/test/busybox:1"],
    [`alpine@${D}`, `docker.io/library/alpine@${D}`],
    [`alpine:3.20@${D}`, `docker.io/library/alpine:3.20@${D}`],
    ["my_org/my-app.web__x", "docker.io/my_org/my-app.web__x:latest"],
  ];
  for (const [input, want] of cases) assert.equal(formatImageRef(parseImageRef(input)), want, input);
});

test("parts are split into registry, repository, tag and digest", () => {
  assert.deepEqual(parseImageRef("127.0.0.1:5000/test/busybox:1"), { registry: "127.0.0.1:5000", repository: "test/busybox", tag: "1", digest: null });
  assert.deepEqual(parseImageRef(`alpine@${D}`), { registry: "docker.io", repository: "library/alpine", tag: null, digest: D });
  assert.equal(formatImageRef(pinned(parseImageRef("alpine:3"), D)), `docker.io/library/alpine@${D}`);
});

test("invalid references are INVALID_ARGUMENT on field image, with the reason", () => {
  for (const bad of ["", "Alpine", "alpine:", "alpine:-x", "a b", "alpine@sha256:1234", "alpine@md5:abc", "UPPER.io/Repo", "foo//bar", "-foo", "a".repeat(300), "[::1]:1/x:y", "[::1]:5000/x", "[zz]/x", "[]/x", "host:0/x", "host:99999/x", "host:/x"]) {
    assert.throws(
      () => parseImageRef(bad),
      (e: unknown) => isHyperfleetError(e, "INVALID_ARGUMENT") && e.details?.field === "image" && e.message.includes("invalid image reference"),
      bad,
    );
  }
});
