/**
 * Pure builder of the guest kernel command line. The defaults are the measured fast-boot set
 * (HOST-NOTES): self-tests off, no KASLR, no PIT calibration when the host TSC rate is known,
 * `panic=-1` so a guest panic ends the VM (QEMU runs with -no-reboot) instead of hanging.
 */
import { guestNetArgs, type GuestNetArgs } from "./guest-net-args.js";

export interface KernelArgsInput {
  /** Guest hostname, passed to the agent as `hf.hostname=`. */
  hostname?: string;
  /** Host TSC rate; skips calibration, which is slow and erratic under TCG. */
  tscKhz?: number;
  /** Console device: hvc0 (virtio console, QEMU) or ttyS0 (Firecracker serial). */
  console?: "hvc0" | "ttyS0";
  rootDevice?: string;
  /** The guest's network (hf.ip= and friends); absent: the guest configures no NIC. */
  net?: GuestNetArgs;
  /** Extra arguments appended last (user override). */
  extra?: string;
}

export const FAST_BOOT_ARGS = [
  "quiet",
  "cryptomgr.notests",
  "init_on_alloc=0",
  "mitigations=off",
  "nokaslr",
  "tsc=reliable",
  "no_timer_check",
  "audit=0",
  "pci=off",
  "8250.nr_uarts=0",
  "panic=-1",
  // Expedited RCU grace periods for the whole boot (the kernel uses them only until /init starts):
  // block-queue setup, mounts and module loads wait on synchronize_rcu, ~4 ms a tick each under
  // TCG; measured: root disk probed and mounted ~50 ms sooner with 2 vCPUs. hf-init turns them
  // off once the agent is up (they made each exec 1-3 ms slower).
  "rcupdate.rcu_expedited=1",
];

export function buildKernelArgs(i: KernelArgsInput = {}): string {
  const console = i.console ?? "hvc0";
  // No UART is needed beside a virtio console, and probing the legacy ports costs boot time; a
  // serial console (Firecracker's only one) needs ttyS0, so there the UARTs stay.
  const fast = console === "hvc0" ? FAST_BOOT_ARGS : FAST_BOOT_ARGS.filter((a) => a !== "8250.nr_uarts=0");
  const args = [`console=${console}`, `root=${i.rootDevice ?? "/dev/vda"}`, "rw", "rootfstype=ext4", ...fast];
  if (i.tscKhz) args.push(`tsc_early_khz=${Math.round(i.tscKhz)}`);
  if (i.hostname) args.push(`hf.hostname=${i.hostname}`);
  if (i.net) args.push(...guestNetArgs(i.net));
  if (i.extra) args.push(i.extra);
  return args.join(" ");
}
