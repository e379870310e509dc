/**
 * The in-process Machine's own small wiring: where guest assets live by default, and one driver
 * registry per data dir, shared by every Machine of the process (so the KVM probe runs once).
 * The daemon wires the same vmm pieces itself (src/daemon/daemon.ts).
 */
import type { VmmDriver } from "../core/ports/vmm-driver.js";
import type { GuestAssets } from "../assets/index.js";
import { DriverRegistry, guestAssetsIn } from "../vmm/registry.js";

export const DEFAULT_DATA_DIR = "/var/lib/hyperfleet";

interface Wiring {
  assets: () => Promise<GuestAssets>;
  registry: DriverRegistry;
}

const byDataDir = new Map<string, Wiring>();

/** The guest assets and the driver registry of `dataDir`: Firecracker if its binary is found and a probe boots with it, else QEMU (KVM if a probe boots with it, else TCG). */
export function wiringFor(dataDir: string): Wiring {
  let w = byDataDir.get(dataDir);
  if (!w) {
    const assets = guestAssetsIn(dataDir);
    w = { assets, registry: new DriverRegistry({ vmm: "auto", accel: "auto", cacheDir: dataDir, assets }) };
    byDataDir.set(dataDir, w);
  }
  return w;
}

/** The default driver of `dataDir` (benchmarks and tools that drive VMs without a Machine). */
export function defaultDriver(dataDir: string): Promise<VmmDriver> {
  return wiringFor(dataDir).registry.driver();
}
