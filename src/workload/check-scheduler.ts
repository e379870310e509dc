/**
 * The one scheduler of every machine's health checks. Each machine has at most one timer and at
 * most one check in flight: the next check is timed from the end of the previous one, so a slow
 * check delays its machine's next one instead of piling up. At most `maxConcurrent` checks run at
 * once across all machines; the rest wait their turn. cancel() and close() clear the timers.
 */
import { Semaphore } from "../host/semaphore.js";

interface Entry {
  timer: NodeJS.Timeout | null;
  intervalMs: number;
  /** Aborted when the machine's checks are cancelled: a queued check gives up its turn. */
  ac: AbortController;
}

export class CheckScheduler {
  private readonly entries = new Map<string, Entry>();
  private readonly slots: Semaphore;
  private closed = false;

  constructor(
    maxConcurrent: number,
    /** Runs one check of machine `id`; must not throw. */
    private readonly check: (id: string, signal: AbortSignal) => Promise<void>,
  ) {
    this.slots = new Semaphore(maxConcurrent);
  }

  /** (Re)starts `id`'s checks: the first after `firstDelayMs`, then every `intervalMs` after each one ends. */
  schedule(id: string, intervalMs: number, firstDelayMs = intervalMs): void {
    if (this.closed) return;
    this.cancel(id);
    const entry: Entry = { timer: null, intervalMs, ac: new AbortController() };
    this.entries.set(id, entry);
    this.arm(id, entry, firstDelayMs);
  }

  has(id: string): boolean {
    return this.entries.has(id);
  }

  cancel(id: string): void {
    const e = this.entries.get(id);
    if (!e) return;
    if (e.timer) clearTimeout(e.timer);
    e.ac.abort();
    this.entries.delete(id);
  }

  /** How many machines have checks scheduled (tests, logs). */
  get size(): number {
    return this.entries.size;
  }

  close(): void {
    this.closed = true;
    for (const id of [...this.entries.keys()]) this.cancel(id);
  }

  private arm(id: string, entry: Entry, delayMs: number): void {
    entry.timer = setTimeout(() => void this.tick(id, entry), delayMs);
    // Checks alone must not keep a process alive (a test's daemon, a CLI that loaded the code).
    entry.timer.unref();
  }

  private async tick(id: string, entry: Entry): Promise<void> {
    entry.timer = null;
    let release: (() => void) | undefined;
    try {
      release = await this.slots.acquire(entry.ac.signal);
      if (this.entries.get(id) !== entry) return;
      await this.check(id, entry.ac.signal);
    } catch {
      // Cancelled while waiting for a slot: nothing to do.
    } finally {
      release?.();
    }
    if (this.entries.get(id) === entry && !this.closed) this.arm(id, entry, entry.intervalMs);
  }
}
