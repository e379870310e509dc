import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ESLint } from "eslint";

// The layer rules live in eslint.config.js (eslint.layers.js); these lint source text as if it were
// a file at the given path, so nothing is written into src/.
const root = fileURLToPath(new URL("../..", import.meta.url));
const eslint = new ESLint({ cwd: root });

async function layerErrors(filePath: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath });
  const layerRules = new Set(["no-restricted-imports", "no-restricted-syntax", "no-restricted-properties"]);
  return result!.messages.filter((m) => m.ruleId !== null && layerRules.has(m.ruleId)).map((m) => m.message);
}

const forbidden: [file: string, code: string][] = [
  ["src/core/machine.ts", `import type { Vm } from "../vmm/vm.js";\nexport type X = Vm;\n`],
  ["src/core/ports/services.ts", `export * from "../../store/store.js";\n`],
  ["src/contract/machine.ts", `import "../api/app.js";\n`],
  ["src/agent/client.ts", `import "../vmm/vm.js";\n`],
  ["src/vmm/qemu/argv.ts", `import "../../store/store.js";\n`],
  ["src/store/store.ts", `import "../machines/service.js";\n`],
  ["src/images/catalog.ts", `import "../vmm/vm.js";\n`],
  ["src/workload/main-process.ts", `import "../machines/io.js";\n`],
  ["src/machines/service.ts", `import "../api/app.js";\n`],
  ["src/machines/service.ts", `import "../config/index.js";\n`],
  ["src/api/routes/machines.ts", `import "../../machines/service.js";\n`],
  ["src/api/serialize.ts", `import "../vmm/vm.js";\n`],
  ["src/embed/wiring.ts", `import "../store/store.js";\n`],
  ["src/cli/main.ts", `import "../machines/service.js";\n`],
  ["src/cli/main.ts", `export const f = () => import("../store/index.js");\n`],
  ["src/machines/io.ts", `export const f = () => import("../store/index.js");\n`],
  ["src/index.ts", `export * from "./daemon/daemon.js";\n`],
  ["src/images/skopeo.ts", `export const home = process.env.HOME;\n`],
  ["src/network/nft.ts", `import "../store/store.js";\n`],
  ["src/network/address-plan.ts", `import "../config/index.js";\n`],
];

for (const [file, code] of forbidden) {
  test(`lint rejects in ${file}: ${code.split("\n")[0]}`, async () => {
    const errors = await layerErrors(file, code);
    assert.equal(errors.length, 1, `expected one layer error, got: ${JSON.stringify(errors)}`);
  });
}

const allowed: [file: string, code: string][] = [
  ["src/core/ports/services.ts", `import "../errors.js";\n`],
  ["src/api/routes/machines.ts", `import "../../contract/machine.js";\nimport "../serialize.js";\n`],
  ["src/vmm/qemu/argv.ts", `import "../../agent/protocol.js";\nimport "../spec.js";\n`],
  ["src/machines/service.ts", `import "../store/machine-repository.js";\nimport "../vmm/vm.js";\n`],
  ["src/daemon/daemon.ts", `import "../machines/service.js";\nimport "../api/app.js";\nimport "../config/index.js";\n`],
  ["src/cli/main.ts", `export const f = () => import("../daemon/run.js");\n`],
  ["src/config/config.ts", `export const home = process.env.HOME;\n`],
];

for (const [file, code] of allowed) {
  test(`lint accepts in ${file}: ${code.split("\n")[0]}`, async () => {
    assert.deepEqual(await layerErrors(file, code), []);
  });
}

test("every folder under src/ has a layer rule", async () => {
  const dirs = readdirSync(new URL("../../src", import.meta.url), { withFileTypes: true }).filter((d) => d.isDirectory());
  assert.ok(dirs.length > 5);
  for (const d of dirs) {
    const config = (await eslint.calculateConfigForFile(`src/${d.name}/x.ts`)) as { rules: Record<string, unknown> };
    assert.ok(config.rules["no-restricted-imports"], `src/${d.name}/ has no entry in eslint.layers.js`);
  }
});
