/** `--secret NAME=value`, `--secret NAME` (from the environment) and `--secret-file NAME=PATH` (pure). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { isHyperfleetError } from "../../src/core/errors.js";
import { secretPairs } from "../../src/cli/secret-args.js";

const files: Record<string, Buffer> = { "/k": Buffer.from("from-file\n"), "/big": Buffer.alloc(65_537, 0x61) };
const readFile = (p: string) => {
  const f = files[p];
  if (!f) throw new Error(`ENOENT: ${p}`);
  return f;
};

test("inline, environment and file sources; later wins; none given is undefined", () => {
  assert.equal(secretPairs({ inline: [], files: [], env: {}, readFile }), undefined);
  assert.deepEqual(secretPairs({ inline: ["A=1=2", "B", "E="], files: ["F=/k"], env: { B: "from-env" }, readFile }), { A: "1=2", B: "from-env", E: "", F: "from-file\n" });
  assert.deepEqual(secretPairs({ inline: ["A=1", "A=2"], files: [], env: {}, readFile }), { A: "2" });
});

test("bad names, unset variables, missing or oversized files are usage errors naming the flag", () => {
  const usage = (s: Parameters<typeof secretPairs>[0], re: RegExp) =>
    assert.throws(() => secretPairs({ env: {}, readFile, ...s }), (e: unknown) => isHyperfleetError(e, "INVALID_ARGUMENT") && e.details?.usage === true && re.test(e.message));
  usage({ inline: ["1A=x"], files: [] }, /--secret 1A: a secret's name/);
  usage({ inline: ["A-B=x"], files: [] }, /--secret A-B/);
  usage({ inline: ["UNSET"], files: [] }, /--secret UNSET: not set in this environment/);
  usage({ inline: [], files: ["F"] }, /--secret-file F: expected NAME=PATH/);
  usage({ inline: [], files: ["F=/nope"] }, /--secret-file F=\/nope: ENOENT/);
  usage({ inline: [], files: ["F=/big"] }, /larger than 65536 bytes/);
});
