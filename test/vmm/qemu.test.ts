/**
 * The QEMU driver against the shared VMM driver conformance suite (driver-suite.ts), wired as the
 * daemon wires it: through the driver registry, KVM only if its probe boots, else TCG.
 */
import { existsSync } from "node:fs";
import { delimiter, join } from "node:path";
import { DriverRegistry, guestAssetsIn } from "../../src/vmm/registry.js";
import { MANIFEST_FILE } from "../../src/assets/index.js";
import { runDriverSuite } from "./driver-suite.js";

const dataDir = process.env.HYPERFLEET_DATA_DIR ?? "/var/lib/hyperfleet";
const assets = guestAssetsIn(dataDir);
const registry = () => new DriverRegistry({ kind: "qemu", accel: "auto", cacheDir: dataDir, assets });

function why(): string | null {
  const onPath = (bin: string) => (process.env.PATH ?? "").split(delimiter).some((d) => existsSync(join(d, bin)));
  if (!onPath("qemu-system-x86_64")) return "no qemu-system-x86_64 binary (npm run setup)";
  if (!existsSync(join(dataDir, MANIFEST_FILE))) return `no guest assets in ${dataDir} (npm run setup)`;
  return null;
}

runDriverSuite({
  name: "qemu",
  // A registry per call: each driver is a fresh instance (the probe's verdict is cached on disk).
  newDriver: () => registry().driver(),
  newDisk: (base, runDir) => registry().disks.rootDisk(base, runDir),
  cloneDisk: (frozen, runDir) => registry().disks.cloneDisk(frozen, runDir),
  assets,
  skip: why(),
});
