/** Facts about the host that VM boot options depend on. */
import { readFileSync } from "node:fs";

let cachedTsc: number | null | undefined;

/**
 * The host TSC rate in kHz when the TSC is constant (then it equals "cpu MHz" in /proc/cpuinfo),
 * else null. Passed to the guest as tsc_early_khz.
 */
export function hostTscKhz(): number | null {
  if (cachedTsc !== undefined) return cachedTsc;
  try {
    const info = readFileSync("/proc/cpuinfo", "utf8");
    const flags = /^flags\s*:(.*)$/m.exec(info)?.[1] ?? "";
    const mhz = Number(/^cpu MHz\s*:\s*([\d.]+)/m.exec(info)?.[1]);
    cachedTsc = / constant_tsc( |$)/.test(flags) && mhz > 0 ? Math.round(mhz * 1000) : null;
  } catch {
    cachedTsc = null;
  }
  return cachedTsc;
}
