/**
 * A create request's network (docs/adr/0008) -> what its store transaction claims. Whether the
 * machine has a network (`"network": false`, an object, or HYPERFLEET_NETWORK_DEFAULT), its policy
 * and its port wishes are checked here, before anything is written; the slot and the host ports
 * are taken inside the transaction (MachineRepository.insert), where nothing else can take them.
 */
import { HyperfleetError } from "../core/errors.js";
import type { MachineNetwork } from "../core/machine.js";
import type { Logger } from "../core/ports/logger.js";
import type { CreateMachineRequest } from "../core/ports/services.js";
import { addressPlan, nextFreeSlot, slotPlan } from "../network/address-plan.js";
import { guestResolvers } from "../network/dns.js";
import { assignPorts, portWishes } from "../network/exposed-ports.js";
import { macFromMachineId } from "../network/mac.js";
import { networkPolicy } from "../network/policy.js";
import { probePort } from "../network/port-probe.js";
import type { NetworkClaim } from "../store/machine-repository.js";

/** The configuration's network settings (src/config/network.ts NetworkConfig). */
export interface CreateNetworkOptions {
  readonly defaultOn: boolean;
  readonly subnet: string;
  readonly dns: readonly string[];
  readonly portsBind: string;
  readonly portRange: { readonly min: number; readonly max: number };
}

function noNetwork(why: string): HyperfleetError {
  return new HyperfleetError("INVALID_ARGUMENT", `exposed_ports: ${why}`, { details: { field: "exposed_ports" } });
}

/** null: the machine gets no network. INVALID_ARGUMENT (with `field`) for a request that cannot be. */
export function networkClaim(req: CreateMachineRequest, id: string, o: CreateNetworkOptions, log: Logger): NetworkClaim | null {
  const wantsPorts = (req.exposedPorts?.length ?? 0) > 0;
  if (req.network === false) {
    if (wantsPorts) throw noNetwork('exposed ports need a network, and this machine has "network": false; drop one of them');
    return null;
  }
  if (req.network === undefined && !o.defaultOn) {
    if (wantsPorts) throw noNetwork('exposed ports need a network: machines get none by default here (HYPERFLEET_NETWORK_DEFAULT=off); add "network": {}');
    return null;
  }
  const policy = networkPolicy(req.network ?? {});
  const wishes = portWishes(req.exposedPorts ?? [], { defaultHostIp: o.portsBind, range: o.portRange, subnet: o.subnet });
  const plan = addressPlan(o.subnet);
  const resolvers = guestResolvers(o.dns);
  if (resolvers.servers.length === 0) {
    log.warn("no DNS resolver for guests: HYPERFLEET_DNS is empty and the host's resolv.conf names none a guest can reach; the machine gets an empty dns list");
  }
  return {
    pickSlot: (used) => nextFreeSlot(plan, used),
    network(slot): MachineNetwork {
      const s = slotPlan(plan, slot);
      return { ...policy, slot, ip: s.vmIp, gateway: s.hostIp, mac: macFromMachineId(id), dns: resolvers.servers };
    },
    ports: (held) => assignPorts(wishes, held, o.portRange, probePort),
  };
}
