/**
 * The VM network port (docs/adr/0008-vm-network-topology.md): what the machine lifecycle needs
 * from the host's network stack. The adapter (src/network/) owns namespaces, veths, TAPs, sysctls
 * and nftables; the lifecycle only says which machines need a network now. Every method is
 * idempotent, so a crash at any step converges when the same call runs again.
 */
import type { ExposedPort, MachineNetwork } from "../machine.js";
import type { NicSpec } from "./vmm-driver.js";

/** One machine's network as the fabric needs it. */
export interface VmNetworkSpec {
  machineId: string;
  network: MachineNetwork;
  exposedPorts: readonly ExposedPort[];
}

/** What a VM boots with once its network is up. */
export interface AttachedNetwork {
  /** `/run/netns/<name>`: the VMM starts in it, where its TAP is. */
  netnsPath: string;
  /** For the VMM driver: the TAP in the namespace and the guest's MAC. */
  nic: NicSpec;
}

export interface NetworkSweep {
  /** Namespaces of ours that no kept machine owns, deleted. */
  namespaces: string[];
  /** Host-side veths of ours that no kept machine owns, deleted. */
  links: string[];
}

export interface NetworkFabric {
  /**
   * Host preparation (ip_forward, the host table); idempotent. Run before the first attach, and
   * only then: a daemon that never starts a networked VM leaves the host as it was.
   */
  init(): Promise<void>;
  /** Brings up the machine's namespace, veth, TAP and namespace rules. Idempotent. */
  attach(vm: VmNetworkSpec): Promise<AttachedNetwork>;
  /** Removes the machine's namespace (its TAP and veth go with it). Idempotent. */
  detach(machineId: string): Promise<void>;
  /**
   * Replaces the host rules (isolation, egress, private networks, exposed ports) with those of
   * `active`: the machines whose network is up or coming up. One atomic nft transaction.
   */
  applyHostRules(active: readonly VmNetworkSpec[]): Promise<void>;
  /** Deletes namespaces and host veths of ours whose machine is not in `keep`. */
  sweep(keep: ReadonlySet<string>): Promise<NetworkSweep>;
}
