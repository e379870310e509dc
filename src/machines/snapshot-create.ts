/**
 * A create request naming a snapshot -> the machine it makes (docs/adr/0009). A restored VM must
 * have its source's shape and devices, so those come from the snapshot and a request asking for
 * others is refused (SNAPSHOT_INCOMPATIBLE, with `field`); its name, env, metadata, network policy
 * and exposed ports are its own. Pure.
 */
import { HyperfleetError } from "../core/errors.js";
import type { NetworkPolicy, NewMachine } from "../core/machine.js";
import type { NetworkClaim } from "../store/machine-repository.js";
import type { CreateMachineRequest } from "../core/ports/services.js";
import type { SnapshotRecord } from "../core/snapshot.js";

function incompatible(field: string, message: string): HyperfleetError {
  return new HyperfleetError("SNAPSHOT_INCOMPATIBLE", `${field}: ${message}`, { details: { field } });
}

/**
 * The request as the snapshot allows it: shape checked, and the network forced to what the source
 * had (a clone has a NIC exactly when its source had one), whatever HYPERFLEET_NETWORK_DEFAULT says.
 */
export function fitRequestToSnapshot(req: CreateMachineRequest, snap: SnapshotRecord): CreateMachineRequest & { vcpuCount: number; memSizeMib: number } {
  const src = snap.source;
  if (req.vcpuCount !== undefined && req.vcpuCount !== src.vcpuCount) throw incompatible("vcpu_count", `the snapshot's machine has ${src.vcpuCount} vCPUs; leave vcpu_count out or give ${src.vcpuCount}`);
  if (req.memSizeMib !== undefined && req.memSizeMib !== src.memSizeMib) throw incompatible("mem_size_mib", `the snapshot's machine has ${src.memSizeMib} MiB; leave mem_size_mib out or give ${src.memSizeMib}`);
  if (req.image !== undefined) throw incompatible("image", "a machine from a snapshot runs the snapshot's disk and processes; leave image out");
  for (const [field, v] of [["cmd", req.cmd], ["entrypoint", req.entrypoint], ["workdir", req.workdir], ["user", req.user]] as const) {
    if (v !== undefined) throw incompatible(field, "the snapshot's main process is already running in it; leave it out");
  }
  if (src.network && req.network === false) throw incompatible("network", 'the snapshot\'s machine has a network, so its clones have one; leave "network" out or give a policy');
  if (!src.network && req.network !== undefined && req.network !== false) throw incompatible("network", "the snapshot's machine has no network, so its clones cannot have one");
  return { ...req, vcpuCount: src.vcpuCount, memSizeMib: src.memSizeMib, network: src.network ? (req.network ?? {}) : false };
}

/** The record fields that come from the snapshot (boot paths for a later cold boot, image, restore). */
export function snapshotMachineFields(snap: SnapshotRecord): Pick<
  NewMachine,
  "kernelImagePath" | "initrdPath" | "kernelArgs" | "rootfsPath" | "imageRef" | "imageDigest" | "imageConfig" | "cmd" | "entrypoint" | "workdir" | "user" | "snapshotId" | "restoreFrom" | "vmm"
> {
  const s = snap.source;
  return {
    kernelImagePath: s.kernelImagePath,
    initrdPath: s.initrdPath,
    kernelArgs: s.kernelArgs,
    // A clone's disk is an overlay on the frozen one, made at its first start and kept.
    rootfsPath: snap.vm.disk?.path ?? s.rootfsPath,
    imageRef: s.imageRef,
    imageDigest: s.imageDigest,
    imageConfig: s.imageConfig,
    cmd: s.cmd,
    entrypoint: s.entrypoint,
    workdir: s.workdir,
    user: s.user,
    snapshotId: snap.id,
    restoreFrom: "snapshot",
    vmm: s.vmm ?? "qemu",
  };
}

/** A clone's NIC keeps its source's MAC (it is in the restored device state): its record says so. */
export function sameMac(claim: NetworkClaim | null, snap: SnapshotRecord | null): NetworkClaim | null {
  const mac = snap?.source.mac;
  if (claim === null || !mac) return claim;
  return { ...claim, network: (slot) => ({ ...claim.network(slot), mac }) };
}

/** Unique, valid machine names for a fork's clones: `<source>-<snapshot suffix>-<n>`. */
export function forkName(source: string, snapshotId: string, n: number): string {
  return `${source.slice(0, 40)}-${snapshotId.slice(-6).toLowerCase()}-${n}`;
}

export function policyOf(n: NetworkPolicy): NonNullable<CreateMachineRequest["network"]> {
  return { internet: n.internet, allowOut: n.allowOut, denyOut: n.denyOut, privateNetwork: n.privateNetwork };
}
