/**
 * What a VM whose network is up boots with (docs/adr/0008), for the daemon (src/machines/
 * vm-factory.ts) and library machines (src/embed/machine.ts) alike: one NIC, the TAP inside its
 * namespace; the guest's NIC configuration, the same for every VM except DNS; and the namespace
 * the VMM starts in. Pure.
 */
import type { AttachedNetwork } from "../core/ports/network.js";
import type { NicSpec } from "../core/ports/vmm-driver.js";
import { GUEST } from "./address-plan.js";
import { MAX_RESOLVERS } from "./dns.js";

export interface NetworkedBoot {
  /** For buildVmSpec's `devices` (devicesFor adds the agent channel; the NIC count picks the initramfs). */
  nics: NicSpec[];
  /** For buildVmSpec's `guestNet` (src/vmm/guest-net-args.ts). */
  guestNet: { address: string; gateway: string; mtu: number; dns: string[]; mac: string };
  /** For VmSpec's `netns`. */
  netns: string;
}

export function networkedBoot(net: AttachedNetwork, dns: readonly string[]): NetworkedBoot {
  return {
    nics: [net.nic],
    guestNet: { address: `${GUEST.ip}/${GUEST.prefix}`, gateway: GUEST.gateway, mtu: GUEST.mtu, dns: dns.slice(0, MAX_RESOLVERS), mac: net.nic.mac },
    netns: net.netnsPath,
  };
}
