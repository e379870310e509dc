/**
 * Embedded defaults of the library: where guest assets live and which driver to use. Kept apart
 * from Machine so the daemon's composition root can pass its own driver instead.
 */
import { join } from "node:path";
import { HyperfleetError } from "../core/errors.js";
import type { VmmDriver } from "../core/ports/vmm-driver.js";
import { initramfsFor, loadGuestAssets, type GuestAssets } from "../assets/index.js";
import { QemuDriver } from "../vmm/qemu/driver.js";
import { probeAccel } from "../vmm/qemu/accel.js";
import { buildKernelArgs } from "../vmm/kernel-args.js";
import { hostTscKhz } from "../vmm/host.js";
import type { Accel } from "../vmm/qemu/argv.js";

export const DEFAULT_DATA_DIR = "/var/lib/hyperfleet";

const assetCache = new Map<string, Promise<GuestAssets>>();
const driverCache = new Map<string, Promise<VmmDriver>>();

export function resolveGuestAssets(dataDir: string): Promise<GuestAssets> {
  let p = assetCache.get(dataDir);
  if (!p) {
    p = loadGuestAssets(dataDir);
    p.catch(() => assetCache.delete(dataDir));
    assetCache.set(dataDir, p);
  }
  return p;
}

/** Picks KVM when a probe VM boots with it, else TCG; the verdict is cached in the data dir. */
export async function resolveAccel(dataDir: string, assets: GuestAssets): Promise<Accel> {
  const verdict = await probeAccel({
    cacheDir: dataDir,
    spec: {
      vcpus: 1,
      memMib: 256,
      kernelPath: assets.vmlinux,
      initrdPath: initramfsFor(assets, { nics: 0, vsock: false }),
      kernelArgs: buildKernelArgs({ tscKhz: hostTscKhz() ?? undefined }),
      rootDisk: { path: assets.rootfs, format: "raw" },
    },
  });
  return verdict.accel;
}

export function defaultDriver(dataDir: string): Promise<VmmDriver> {
  let p = driverCache.get(dataDir);
  if (!p) {
    p = (async () => {
      const assets = await resolveGuestAssets(dataDir).catch((e: unknown) => {
        throw e instanceof HyperfleetError ? e : new HyperfleetError("GUEST_ASSETS_MISSING", `no guest assets in ${join(dataDir, "assets.json")}; run \`npm run setup\``, { cause: e });
      });
      return new QemuDriver({ accel: await resolveAccel(dataDir, assets) });
    })();
    p.catch(() => driverCache.delete(dataDir));
    driverCache.set(dataDir, p);
  }
  return p;
}
