/**
 * The in-process Machine's own small wiring: where guest assets live by default, one driver
 * registry per data dir, shared by every Machine of the process (so the KVM probe runs once), and
 * one image cache per cache dir (ImageService wants one instance per dir). The daemon wires the
 * same vmm and images pieces itself (src/daemon/daemon.ts).
 */
import type { VmmDriver } from "../core/ports/vmm-driver.js";
import type { GuestAssets } from "../assets/index.js";
import { loadLibraryImageConfig } from "../config/library.js";
import { ImageService } from "../images/index.js";
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

const imageServices = new Map<string, Promise<ImageService>>();

/**
 * The image cache in `cacheDir`, opened once per process with the daemon's registry settings from
 * the environment (HYPERFLEET_INSECURE_REGISTRIES, _REGISTRY_MIRRORS, _AGENT_BINARY,
 * _OCI_MAX_CACHE_SIZE). A failed open is retried on the next call.
 */
export function imagesIn(cacheDir: string): Promise<ImageService> {
  let p = imageServices.get(cacheDir);
  if (!p) {
    const opening = (async () => {
      const c = loadLibraryImageConfig().unwrap();
      return ImageService.open({ cacheDir, maxCacheSize: c.maxCacheSize, insecureRegistries: c.insecureRegistries, mirrors: c.mirrors, agentBinary: c.agentBinary });
    })();
    opening.catch(() => {
      if (imageServices.get(cacheDir) === opening) imageServices.delete(cacheDir);
    });
    imageServices.set(cacheDir, opening);
    p = opening;
  }
  return p;
}
