/**
 * The file tree calls of a running machine (FileTreePort): list, mkdir, rename, and streamed
 * transfers. Each step with the guest is bounded by HYPERFLEET_FILE_TRANSFER_TIMEOUT and cancelled
 * in the guest when the client goes away; a streamed transfer as a whole is bounded by its progress
 * (each window, entry or chunk), not by one deadline, so a large file is not cut at a fixed time.
 */
import type { AgentClient } from "../agent/client.js";
import { HyperfleetError, isHyperfleetError } from "../core/errors.js";
import type { DirEntryView, UnpackView } from "../core/ports/services.js";
import type { MachineRecord } from "../core/machine.js";
import type { Vm } from "../vmm/vm.js";
import { cancellable } from "../host/async.js";
import { capped, downloadable, primed, readWindows, tarStream, tooLarge, unpackTar, walkTree, type StreamLimits } from "./file-streams.js";

type Resolve = (id: string) => Promise<{ rec: MachineRecord; machine: Vm }>;

export class MachineFileIo {
  constructor(
    private readonly resolve: Resolve,
    private readonly timeoutMs: number,
  ) {}

  async listDir(id: string, path: string, limit: number, signal?: AbortSignal): Promise<{ entries: DirEntryView[]; truncated: boolean }> {
    const agent = await this.agent(id);
    const r = await this.step(`listing ${path}`, signal, (s) => agent.readdir(path, { maxEntries: limit, signal: s }));
    r.entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return r;
  }

  async mkdir(id: string, path: string, opts: { parents: boolean; mode?: number }, signal?: AbortSignal): Promise<void> {
    const agent = await this.agent(id);
    await this.step(`mkdir ${path}`, signal, () => agent.mkdir(path, opts));
  }

  async rename(id: string, from: string, to: string, opts: { noReplace: boolean }, signal?: AbortSignal): Promise<void> {
    const agent = await this.agent(id);
    await this.step(`rename of ${from}`, signal, () => agent.rename(from, to, opts));
  }

  async openDownload(id: string, path: string, maxSize: number, signal?: AbortSignal): Promise<{ size: number; body: AsyncIterable<Buffer> }> {
    const agent = await this.agent(id);
    const lim = this.limits(maxSize, signal);
    const st = await downloadable(agent, path, lim);
    if (st.size === 0) {
      // Size unknown (procfs, sysfs): such files are small, or endless. Read it whole, so one over
      // the limit is a 413 before any byte is sent, not a cut response; bounded by maxSize.
      const data = await this.step(`download of ${path}`, signal, (s) => agent.readFile(path, { maxBytes: maxSize, signal: s })).catch((e: unknown) => {
        throw isHyperfleetError(e, "FILE_TOO_LARGE") ? tooLarge(`${path} has more than ${maxSize} bytes`, maxSize, e) : e;
      });
      return { size: data.length, body: (async function* () {
        yield data;
      })() };
    }
    return { size: st.size, body: await primed(readWindows(agent, path, lim)) };
  }

  async openTarDownload(id: string, path: string, maxSize: number, signal?: AbortSignal): Promise<AsyncIterable<Buffer>> {
    const agent = await this.agent(id);
    const lim = this.limits(maxSize, signal);
    return tarStream(agent, await walkTree(agent, path, lim), lim);
  }

  /** fsync: "uploaded" means on the guest's disk, as for the JSON upload. */
  async uploadStream(id: string, path: string, body: AsyncIterable<Buffer>, opts: { mode?: number; maxSize: number }, signal?: AbortSignal): Promise<{ size: number }> {
    const agent = await this.agent(id);
    const idle = new Idle(this.timeoutMs, `upload of ${path}`);
    try {
      const s = signal ? AbortSignal.any([idle.signal, signal]) : idle.signal;
      const size = await agent.writeFile(path, capped(body, opts.maxSize, () => idle.touch()), {
        mkdirs: true,
        fsync: true,
        signal: s,
        ...(opts.mode !== undefined && { mode: opts.mode }),
      });
      return { size };
    } finally {
      idle.stop();
    }
  }

  async uploadTar(id: string, path: string, body: AsyncIterable<Buffer>, maxSize: number, signal?: AbortSignal): Promise<UnpackView> {
    const agent = await this.agent(id);
    return unpackTar(agent, path, capped(body, maxSize), this.limits(maxSize, signal));
  }

  private limits(maxSize: number, signal?: AbortSignal): StreamLimits {
    return { maxSize, timeoutMs: this.timeoutMs, ...(signal && { signal }) };
  }

  private step<T>(what: string, signal: AbortSignal | undefined, op: (s: AbortSignal) => Promise<T>): Promise<T> {
    return cancellable(op, this.timeoutMs, "FILE_TRANSFER_TIMEOUT", what, signal);
  }

  private async agent(id: string): Promise<AgentClient> {
    const { machine } = await this.resolve(id);
    const agent = machine.agent;
    if (!agent) throw new HyperfleetError("MACHINE_NOT_RUNNING", `machine ${id} has no agent connection right now; wait for 'running'`);
    return agent;
  }
}

/** An abort signal that fires when touch() was not called for `ms` (FILE_TRANSFER_TIMEOUT). */
class Idle {
  private readonly ac = new AbortController();
  private timer: NodeJS.Timeout;

  constructor(
    private readonly ms: number,
    private readonly what: string,
  ) {
    this.timer = this.arm();
  }

  get signal(): AbortSignal {
    return this.ac.signal;
  }

  touch(): void {
    clearTimeout(this.timer);
    this.timer = this.arm();
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  private arm(): NodeJS.Timeout {
    return setTimeout(() => this.ac.abort(new HyperfleetError("FILE_TRANSFER_TIMEOUT", `${this.what} made no progress for ${this.ms} ms; it was cancelled`)), this.ms);
  }
}
