/**
 * HyperfleetClient: the daemon's REST API, typed by the wire contract (src/contract), with the
 * in-process Machine's Result values.
 *
 * @example
 * const hf = new HyperfleetClient(); // HYPERFLEET_URL, HYPERFLEET_API_KEY
 * const m = (await hf.machines.create({ name: "web", vcpu_count: 1, mem_size_mib: 256, start: true })).unwrap();
 * (await hf.machines.wait(m.id)).unwrap();
 * const r = (await hf.machines.exec(m.id, ["uname", "-a"])).unwrap();
 * console.log(r.exit_code, r.stdout);
 * (await hf.machines.delete(m.id)).unwrap();
 */
import { clientEnvironment, DEFAULT_URL } from "./env.js";
import { Files } from "./files.js";
import { Images } from "./images.js";
import { Machines } from "./machines.js";
import { Processes } from "./processes.js";
import { Snapshots } from "./snapshots.js";
import { Transport } from "./transport.js";
import { Volumes } from "./volumes.js";

export interface HyperfleetClientOptions {
  /** The daemon, e.g. `http://127.0.0.1:3000`. Default: HYPERFLEET_URL, else that address. */
  url?: string;
  /** Default: HYPERFLEET_API_KEY (its first key when it is a comma list). None: no Authorization header. */
  apiKey?: string;
  /** Milliseconds a call may take unless it says otherwise (exec, pulls, transfers have longer ones). Default 60 s. */
  timeoutMs?: number;
  /** Largest answer read into memory (downloads have their own `maxBytes`). Default 64 MiB. */
  maxResponseBytes?: number;
  /** Default: the global fetch. */
  fetch?: typeof fetch;
}

export class HyperfleetClient {
  readonly url: string;
  readonly machines: Machines;
  readonly files: Files;
  readonly images: Images;
  readonly snapshots: Snapshots;
  readonly processes: Processes;
  readonly volumes: Volumes;

  constructor(opts: HyperfleetClientOptions = {}) {
    const env = opts.url === undefined || opts.apiKey === undefined ? clientEnvironment() : {};
    this.url = opts.url ?? env.url ?? DEFAULT_URL;
    const t = new Transport({
      url: this.url,
      apiKey: opts.apiKey ?? env.apiKey,
      timeoutMs: opts.timeoutMs ?? 60_000,
      maxResponseBytes: opts.maxResponseBytes ?? 64 * 1024 * 1024,
      fetch: opts.fetch ?? globalThis.fetch,
    });
    this.machines = new Machines(t);
    this.files = new Files(t);
    this.images = new Images(t);
    this.snapshots = new Snapshots(t);
    this.processes = new Processes(t);
    this.volumes = new Volumes(t);
  }
}
