/**
 * Whether Firecracker can run VMs here, decided by booting one, never by the existence of
 * /dev/kvm (a PVM-backed host has one that stock guests hang on: qemu/accel.ts). The verdict is
 * cached per host kernel, binary and guest kernel, like QEMU's accelerator probe.
 */
import { constants, existsSync } from "node:fs";
import { access, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { release } from "node:os";
import { delimiter, join } from "node:path";
import type { VmSpec } from "../../core/ports/vmm-driver.js";
import { bootVm } from "../boot.js";
import { FirecrackerDriver } from "./driver.js";

export interface FirecrackerProbeInput {
  /** Where to cache the verdict (vmm.json). */
  cacheDir: string;
  /** The binary as configured: a path, or a name looked up on PATH. */
  binary: string;
  /** PATH to look a bare name up in. */
  searchPath: string;
  /** A bootable VM with a vsock agent: kernel, initrd, a root disk with our agent (opened read-only). */
  spec: () => Promise<Omit<VmSpec, "id" | "runDir">>;
  timeoutMs?: number;
  log?: (msg: string) => void;
}

export interface FirecrackerVerdict {
  usable: boolean;
  reason: string;
  key: string;
}

/** The binary's path: as given when it names a path, else the first match on `searchPath`; null when absent. Pure but for existsSync. */
export function findBinary(binary: string, searchPath: string): string | null {
  if (binary.includes("/")) return existsSync(binary) ? binary : null;
  for (const d of searchPath.split(delimiter)) {
    if (d !== "" && existsSync(join(d, binary))) return join(d, binary);
  }
  return null;
}

export async function probeFirecracker(i: FirecrackerProbeInput): Promise<FirecrackerVerdict> {
  const bin = findBinary(i.binary, i.searchPath);
  // Not cached: installing the binary later must be noticed at the next start.
  if (bin === null) return { usable: false, reason: `no ${i.binary} binary found`, key: "" };
  let spec: Omit<VmSpec, "id" | "runDir">;
  try {
    spec = await i.spec();
  } catch (e) {
    // No guest to probe with (assets not set up yet): not usable now, and not cached either.
    return { usable: false, reason: `no probe guest: ${(e as Error).message.split("\n")[0]}`, key: "" };
  }
  const key = `${release()}|${bin}|${spec.kernelPath}`;
  const cacheFile = join(i.cacheDir, "vmm.json");
  try {
    const cached = JSON.parse(await readFile(cacheFile, "utf8")) as FirecrackerVerdict;
    if (cached.key === key) return cached;
  } catch {
    /* no cache yet */
  }
  const verdict = await runProbe(i, bin, spec, key);
  await mkdir(i.cacheDir, { recursive: true });
  await writeFile(cacheFile, JSON.stringify(verdict, null, 2));
  i.log?.(`firecracker: ${verdict.usable ? "usable" : "not usable"} (${verdict.reason})`);
  return verdict;
}

async function runProbe(i: FirecrackerProbeInput, bin: string, base: Omit<VmSpec, "id" | "runDir">, key: string): Promise<FirecrackerVerdict> {
  try {
    await access("/dev/kvm", constants.R_OK | constants.W_OK);
  } catch {
    return { usable: false, reason: "/dev/kvm is not accessible", key };
  }
  const id = `fcprobe-${process.pid}`;
  const runDir = join(i.cacheDir, "probe", id);
  // The probe shares the base disk with other VMs, so it mounts it read-only.
  const spec: VmSpec = { ...base, id, runDir, kernelArgs: base.kernelArgs.replace(/\brw\b/, "ro"), rootDisk: { ...base.rootDisk, readOnly: true } };
  try {
    const vm = await bootVm(new FirecrackerDriver({ binary: bin }), spec, i.timeoutMs ?? 8_000);
    await vm.agent.ping();
    vm.agent.close();
    await vm.handle.kill();
    await vm.handle.cleanup();
    return { usable: true, reason: "a Firecracker guest booted on KVM and its agent answered", key };
  } catch (e) {
    return { usable: false, reason: `a Firecracker guest did not boot: ${(e as Error).message.split("\n")[0]}`, key };
  } finally {
    await rm(runDir, { recursive: true, force: true });
  }
}
