/**
 * The composition root: configuration -> store -> API keys -> VM factory -> lifecycle ->
 * reconciliation -> service -> HTTP. Nothing else in the code base wires concrete pieces together.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import type { Logger } from "pino";
import { buildApp } from "../api/app.js";
import type { Config } from "../config/config.js";
import { openStore, type Store } from "../store/store.js";
import { setupApiKeys } from "./api-keys.js";
import { createLogger } from "./logger.js";
import { MachineService } from "./machine-service.js";
import { reconcile, type ReconcileReport } from "./reconcile.js";
import { VmFactory } from "./vm-factory.js";
import { VmLifecycle } from "./vm-lifecycle.js";

export interface Daemon {
  readonly app: FastifyInstance;
  readonly service: MachineService;
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
  try {
    const keys = await setupApiKeys(config.auth, store.apiKeys, opts.print ?? ((t) => process.stderr.write(`${t}\n`)));
    if (keys.verifier === null) log.warn("authentication is OFF (HYPERFLEET_AUTH=off); only loopback clients can reach the API");
    else log.info({ source: keys.source, keys: keys.verifier.size }, "API keys loaded");

    const vms = new VmFactory({
      dataDir: config.dataDir,
      assetsDir: config.assetsDir,
      socketDir: config.socketDir,
      guest: config.guest,
      startTimeoutMs: config.startTimeoutMs,
      accel: config.accel,
    });
    const lifecycle = new VmLifecycle({
      repo: store.machines,
      vms,
      stopTimeoutMs: config.stopTimeoutMs,
      maxConcurrentBoots: config.maxConcurrentBoots,
    });
    const reconciled = await reconcile({ repo: store.machines, vms, lifecycle, log });
    const service = new MachineService({
      repo: store.machines,
      vms,
      lifecycle,
      log,
      fileTransferTimeoutMs: config.fileTransferTimeoutMs,
    });
    const app = await buildApp({ service, logger: log, auth: keys.verifier, fileMaxSize: config.fileMaxSize, version: VERSION });

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
        await service.close({ stopVms: config.stopVmsOnExit });
        await app.close();
        await store.close();
      })());
    return { app, service, store, log, reconciled, url, close };
  } catch (e) {
    await store.close();
    throw e;
  }
}
