/**
 * The composition root: configuration -> store -> API keys -> image cache -> VM factory ->
 * lifecycle (with the image boot hooks) -> image pulls -> reconciliation -> service -> HTTP.
 * Nothing else in the code base wires concrete pieces together.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import type { Logger } from "pino";
import { buildApp } from "../api/app.js";
import type { Config } from "../config/config.js";
import type { ImageService } from "../images/index.js";
import { openStore, type Store } from "../store/store.js";
import { setupApiKeys } from "./api-keys.js";
import { ImageCatalog } from "../images/catalog.js";
import { ImagePulls } from "../machines/image-pulls.js";
import { openImages } from "./images.js";
import { imageBootHooks } from "../machines/boot-hooks.js";
import { MachineStatuses } from "../machines/statuses.js";
import { createLogger } from "./logger.js";
import { MachineService } from "../machines/service.js";
import { MainProcesses } from "../workload/main-process.js";
import { Supervisor } from "../machines/supervisor.js";
import { reconcile, type ReconcileReport } from "../machines/reconcile.js";
import { VmFactory } from "../machines/vm-factory.js";
import { guestAssetsIn, openDriverRegistry } from "../vmm/registry.js";
import { VmLifecycle } from "../machines/lifecycle.js";
import { MachineSnapshots } from "../machines/snapshots.js";
import { WarmTemplates } from "../machines/templates.js";
import type { VmSnapshot } from "../core/ports/vmm-driver.js";
import { MachineNetworks } from "../machines/networks.js";
import { MachineVolumes } from "../machines/volumes.js";
import { addressPlan, instanceTag } from "../network/address-plan.js";
import { LinuxNetworkFabric } from "../network/fabric.js";
import { startProxy, type RunningProxy } from "./proxy.js";
import { loadSecretKey } from "../host/secret-key.js";
import { MachineSecrets } from "../machines/secrets.js";

export interface Daemon {
  readonly app: FastifyInstance;
  readonly service: MachineService;
  /** The image cache; null when images are off on this host (the log says why). */
  readonly images: ImageService | null;
  readonly store: Store;
  readonly log: Logger;
  readonly reconciled: ReconcileReport;
  /** `http://host:port` once listening; null when started with `listen: false`. */
  readonly url: string | null;
  /** Graceful stop: no new requests, pending ones answered, VMs left running unless stopVmsOnExit. */
  close(): Promise<void>;
}

export interface StartOptions {
  /** false: build everything but do not open a port (tests use app.inject()). */
  listen?: boolean;
  logger?: Logger;
  /** Where a generated API key is shown (default: stderr, outside the JSON log stream). */
  print?: (text: string) => void;
}

export const VERSION: string = (
  JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }
).version;

export async function startDaemon(config: Config, opts: StartOptions = {}): Promise<Daemon> {
  const log = opts.logger ?? createLogger(config.logLevel);
  const store = await openStore({ path: join(config.dataDir, "hyperfleet.db") });
  let images: Awaited<ReturnType<typeof openImages>> | null = null;
  let proxy: RunningProxy | null = null;
  try {
    const keys = await setupApiKeys(config.auth, store.apiKeys, opts.print ?? ((t) => process.stderr.write(`${t}\n`)));
    if (keys.verifier === null) log.warn("authentication is OFF (HYPERFLEET_AUTH=off); only loopback clients can reach the API");
    else log.info({ source: keys.source, keys: keys.verifier.size }, "API keys loaded");

    const secretKey = loadSecretKey(config.secretKey, config.dataDir);
    log.info({ source: secretKey.source }, "secret key loaded");
    const secrets = new MachineSecrets(secretKey.key, store.machines);
    // Snapshots hold their images like machines do (a snapshot's frozen disk lies on its image's).
    const imageHolders = async () => [...(await store.machines.list()), ...(await store.snapshots.list({ auto: true })).map((s) => ({ id: s.id, imageDigest: s.source.imageDigest }))];
    images = await openImages(config.oci, await imageHolders(), log);
    const opened = images;
    const assets = guestAssetsIn(config.assetsDir);
    const registry = await openDriverRegistry({
      vmm: config.vmm,
      accel: config.accel,
      cacheDir: config.assetsDir,
      assets,
      firecrackerBinary: config.firecrackerBinary,
      ...(config.jailer.enabled ? { jailer: { ...config.jailer, memOverheadMib: config.capacity.vmOverheadMib } } : {}),
      log: (msg) => log.info(msg),
    });
    log.info({ vmm: registry.kind }, "VMM chosen");
    const volumes = new MachineVolumes({ repo: store.volumes, dataDir: config.dataDir, maxSizeMib: config.volumeMaxSizeMib, log });
    const vms = new VmFactory({
      volumeDisks: (rec, signal) => volumes.disks(rec, signal),
      dataDir: config.dataDir,
      socketDir: config.socketDir,
      guest: config.guest,
      assets,
      registry,
      startTimeoutMs: config.startTimeoutMs,
    });
    // The supervisor restarts a main process seen exited; it is built after the lifecycle it drives.
    let supervisor: Supervisor | null = null;
    const main = new MainProcesses((id) => secrets.open(id), (id, st) => supervisor?.mainExited(id, st));
    const statuses = new MachineStatuses(store.machines, config.capacity);
    const pulls = opened.service ? new ImagePulls({ images: opened.service, repo: store.machines, users: opened.users, statuses }) : null;
    // Namespaces carry a tag of this data dir, so two daemons on one host never sweep each other's.
    const fabric = new LinuxNetworkFabric({ plan: addressPlan(config.network.subnet), tag: instanceTag(config.dataDir), hostNetns: null });
    const networks = new MachineNetworks(fabric, store.machines);
    const snapshotDir = join(config.dataDir, "snapshots");
    const templates = config.templates.enabled
      ? new WarmTemplates({ machines: store.machines, snapshots: store.snapshots, imageUsers: opened.users, dir: snapshotDir, maxSize: config.templates.maxSize, vmmFingerprint: () => vms.vmmFingerprint() })
      : undefined;
    const lifecycle = new VmLifecycle({
      repo: store.machines,
      statuses,
      vms,
      networks,
      stopTimeoutMs: config.stopTimeoutMs,
      maxConcurrentBoots: config.maxConcurrentBoots,
      maxConcurrentRestores: config.maxConcurrentRestores,
      hooks: imageBootHooks(pulls, opened.unavailable, main, secrets),
      snapshotOf: async (id): Promise<VmSnapshot> => (await snapshots.record(id)).vm,
      ...(templates && { templates }),
    });
    const snapshots = new MachineSnapshots({ machines: store.machines, snapshots: store.snapshots, live: lifecycle.live, imageUsers: opened.users, dir: snapshotDir, log });
    const sup = new Supervisor({ repo: store.supervision, machines: store.machines, lifecycle, main, log, maxConcurrentChecks: config.healthMaxConcurrentChecks });
    supervisor = sup;
    // Opened before reconciliation: a machine found dead there is restarted by its policy.
    await sup.open();
    const reconciled = await reconcile({ repo: store.machines, vms, lifecycle, networks, log });
    // Before the service: machine views carry the proxy's URLs (its port is known once it listens).
    if (config.proxy) proxy = await startProxy(config.proxy, store.proxyTargets, log);
    await sup.started();
    const cap = config.capacity;
    log.info({ max_memory_mib: cap.maxMemoryMib, vm_overhead_mib: cap.vmOverheadMib, max_vcpus: cap.maxVcpus, max_vcpus_per_machine: cap.maxVcpusPerMachine }, "admission limits");
    await snapshots.sweep(log);
    await volumes.sweep();
    await templates?.evict(log);
    await opened.users.sync(await imageHolders());
    const service = new MachineService({
      repo: store.machines,
      vms,
      lifecycle,
      log,
      fileTransferTimeoutMs: config.fileTransferTimeoutMs,
      capacity: config.capacity,
      network: config.network,
      snapshots,
      secrets,
      supervisor: sup,
      volumes,
      images: { pulls, unavailable: opened.unavailable, users: opened.users, main },
      tokens: store.proxyTargets,
      ...(proxy && { serviceUrls: proxy.urls }),
    });
    const catalog = new ImageCatalog(opened.service, opened.unavailable, service.closing);
    const app = await buildApp({ service, images: catalog, snapshots, volumes, logger: log, auth: keys.verifier, fileMaxSize: config.fileMaxSize, limits: config.http, execOutputMax: config.execOutputMax, version: VERSION, vmm: () => vms.vmmInfo() });

    let url: string | null = null;
    if (opts.listen !== false) {
      url = await app.listen({ port: config.port, host: config.host });
      log.info({ url, data_dir: config.dataDir, version: VERSION }, "hyperfleet listening");
    } else {
      await app.ready();
    }

    let closing: Promise<void> | null = null;
    const close = () =>
      (closing ??= (async () => {
        log.info({ stop_vms: config.stopVmsOnExit, live_vms: service.live.all().length }, "shutting down");
        // First: no check or policy restart may act on VMs that are being let go of or stopped.
        sup.close();
        await proxy?.close();
        await service.close({ stopVms: config.stopVmsOnExit });
        await app.close();
        await opened.service?.close();
        await store.close();
      })());
    return { app, service, images: opened.service, store, log, reconciled, url, close };
  } catch (e) {
    await proxy?.close();
    await images?.service?.close();
    await store.close();
    throw e;
  }
}
