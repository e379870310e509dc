/** The host tar's argv for `hyperfleet cp` of directories (pure). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { packArgs, unpackArgs } from "../../src/cli/local-tar.js";

test("pack: ustar (the daemon's codec), relative to the directory, the name after --", () => {
  assert.deepEqual(packArgs("/home/u", "-site"), ["--format=ustar", "-C", "/home/u", "-cf", "-", "--", "-site"]);
});

test("unpack: into the directory, stripping the archive's top component only when asked", () => {
  assert.deepEqual(unpackArgs("/tmp/x", 0), ["-C", "/tmp/x", "-xf", "-"]);
  assert.deepEqual(unpackArgs("/tmp/x", 1), ["-C", "/tmp/x", "--strip-components=1", "-xf", "-"]);
});
