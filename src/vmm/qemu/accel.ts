/**
 * Chooses KVM or TCG by booting, never by the existence of /dev/kvm: on PVM-backed hosts /dev/kvm
 * exists but stock guest kernels hang. The verdict is cached per host kernel, QEMU and guest kernel.
 */
import { constants } from "node:fs";
import { access, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { release } from "node:os";
import { join } from "node:path";
import type { VmSpec } from "../../core/ports/vmm-driver.js";
import type { Accel } from "./argv.js";
import { QemuDriver } from "./driver.js";
import { bootVm } from "../boot.js";

export interface AccelProbeInput {
  /** Where to cache the verdict (accel.json). */
  cacheDir: string;
  /** A bootable VM: kernel, initrd, a root disk with our agent (opened read-only). */
  spec: Omit<VmSpec, "id" | "runDir">;
  qemuBinary?: string;
  /** How long a KVM boot may take before we call it a failure. */
  timeoutMs?: number;
  log?: (msg: string) => void;
}

export interface AccelVerdict {
  accel: Accel;
  reason: string;
  key: string;
}

export async function probeAccel(i: AccelProbeInput): Promise<AccelVerdict> {
  const key = `${release()}|${i.spec.kernelPath}|${i.qemuBinary ?? "qemu-system-x86_64"}`;
  const cacheFile = join(i.cacheDir, "accel.json");
  try {
    const cached = JSON.parse(await readFile(cacheFile, "utf8")) as AccelVerdict;
    if (cached.key === key) return cached;
  } catch {
    /* no cache yet */
  }
  const verdict = await runProbe(i, key);
  await mkdir(i.cacheDir, { recursive: true });
  await writeFile(cacheFile, JSON.stringify(verdict, null, 2));
  i.log?.(`accelerator: ${verdict.accel} (${verdict.reason})`);
  return verdict;
}

async function runProbe(i: AccelProbeInput, key: string): Promise<AccelVerdict> {
  try {
    await access("/dev/kvm", constants.R_OK | constants.W_OK);
  } catch {
    return { accel: "tcg", reason: "/dev/kvm is not accessible", key };
  }
  const id = `kvmprobe-${process.pid}`;
  const runDir = join(i.cacheDir, "probe", id);
  const driver = new QemuDriver({ accel: "kvm", ...(i.qemuBinary ? { qemuBinary: i.qemuBinary } : {}) });
  // The probe shares the base disk with other VMs, so it mounts it read-only.
  const spec: VmSpec = { ...i.spec, id, runDir, kernelArgs: i.spec.kernelArgs.replace(/\brw\b/, "ro"), rootDisk: { ...i.spec.rootDisk, readOnly: true } };
  try {
    const vm = await bootVm(driver, spec, i.timeoutMs ?? 8_000);
    await vm.agent.ping();
    vm.agent.close();
    await vm.handle.kill();
    return { accel: "kvm", reason: "a KVM guest booted and its agent answered", key };
  } catch (e) {
    return { accel: "tcg", reason: `KVM guest did not boot: ${(e as Error).message.split("\n")[0]}`, key };
  } finally {
    await rm(runDir, { recursive: true, force: true });
  }
}
