/** Stores on temp SQLite files and machine records for them, shared by the store's tests. */
import { after } from "node:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStore, type NewMachine, type Store } from "../src/store/index.js";

const dirs: string[] = [];
// Registered at import, at the top level of the importing test file: inside a test it would be
// that test's hook instead.
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A new store in a temp dir (removed after the test file), its file one directory further down. */
export async function tempStore(clock?: () => Date): Promise<{ store: Store; path: string }> {
  const dir = mkdtempSync(join(tmpdir(), "hf-store-"));
  dirs.push(dir);
  const path = join(dir, "sub", "hyperfleet.db");
  return { store: await openStore({ path, ...(clock && { clock }) }), path };
}

/** A record with every field set to something plausible; `name` defaults to the id. */
export function newMachine(id: string, name = id): NewMachine {
  return {
    id,
    name,
    vcpuCount: 1,
    memSizeMib: 256,
    imageRef: null,
    kernelImagePath: "/k",
    initrdPath: null,
    kernelArgs: null,
    rootfsPath: "/r",
    runDir: `/run/${id}`,
    network: null,
    env: { A: "1" },
    metadata: { team: "x" },
    vmm: "qemu",
  };
}
