/** Background processes (docs/exec-stream.md): they outlive the request that started them. */
import type { ProcessJson, ProcessStartBody, SignalBody } from "../contract/processes.js";
import { attempt, type Result } from "../core/result.js";
import { machinePath } from "./paths.js";
import type { CallOptions, Transport } from "./transport.js";

export interface ProcessOutputOptions extends CallOptions {
  /** Keep reading until the process exits. */
  follow?: boolean;
  /** Only the last N lines. */
  tail?: number;
}

export class Processes {
  constructor(private readonly t: Transport) {}

  start(id: string, body: ProcessStartBody, o: CallOptions = {}): Promise<Result<ProcessJson>> {
    return attempt(() => this.t.json<ProcessJson>({ ...o, method: "POST", path: machinePath(id, "/processes"), body }));
  }

  /** Those of the machine's current boot, oldest first. */
  list(id: string, o: CallOptions = {}): Promise<Result<ProcessJson[]>> {
    return attempt(async () => (await this.t.json<{ processes: ProcessJson[] }>({ ...o, method: "GET", path: machinePath(id, "/processes") })).processes);
  }

  /** To the process's group; 409 PROCESS_NOT_RUNNING once it exited. */
  signal(id: string, pid: number, signal: SignalBody["signal"], o: CallOptions = {}): Promise<Result<void>> {
    return attempt(async () => {
      await this.t.request({ ...o, method: "POST", path: machinePath(id, `/processes/${pid}/signal`), body: { signal } });
    });
  }

  /**
   * Its stdout and stderr, interleaved, as chunks of bytes; with `follow` until it exits. The
   * timeout covers the wait for the answer's headers; `signal` or leaving the loop ends the read.
   */
  output(id: string, pid: number, opts: ProcessOutputOptions = {}): Promise<Result<AsyncIterableIterator<Buffer>>> {
    const { follow, tail, ...o } = opts;
    return attempt(async () => {
      const a = await this.t.open({ ...o, method: "GET", path: machinePath(id, `/processes/${pid}/output`), query: { follow: follow === true ? true : undefined, tail }, accept: "text/plain" });
      return a.chunks;
    });
  }
}
