/**
 * In-code migrations, applied in name order by Kysely's Migrator. Never edit a released migration:
 * add the next numbered one.
 */
import type { Migration, MigrationProvider } from "kysely";
import { initial } from "./0001-initial.js";
import { images } from "./0002-images.js";
import { networkSlots } from "./0003-network-slots.js";
import { exposedPorts } from "./0004-exposed-ports.js";
import { snapshots } from "./0005-snapshots.js";
import { machineVmm } from "./0006-machine-vmm.js";
import { proxy } from "./0007-proxy.js";
import { secrets } from "./0008-secrets.js";
import { health } from "./0009-health.js";
import { volumes } from "./0010-volumes.js";

const MIGRATIONS: Record<string, Migration> = {
  "0001-initial": initial,
  "0002-images": images,
  "0003-network-slots": networkSlots,
  "0004-exposed-ports": exposedPorts,
  "0005-snapshots": snapshots,
  "0006-machine-vmm": machineVmm,
  "0007-proxy": proxy,
  "0008-secrets": secrets,
  "0009-health": health,
  "0010-volumes": volumes,
};

export const migrationProvider: MigrationProvider = {
  getMigrations: () => Promise.resolve(MIGRATIONS),
};
