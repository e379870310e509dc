/**
 * GET /machines/:id/wait: resolve when a machine reaches a status, from persisted changes
 * published on the StatusBus (subscribe first, then read, so no change slips between the two).
 */
import { HyperfleetError } from "../core/errors.js";
import type { MachineStatus } from "../core/machine-state.js";
import type { MachineRecord } from "../core/machine.js";
import type { StatusBus } from "./status-bus.js";

export interface WaitOptions {
  bus: StatusBus;
  get: (id: string) => Promise<MachineRecord>;
  id: string;
  status: MachineStatus;
  timeoutMs: number;
  /** Client gone or daemon shutting down. */
  signal: AbortSignal;
}

export function waitForStatus(o: WaitOptions): Promise<MachineRecord> {
  return new Promise<MachineRecord>((resolve, reject) => {
    let last: MachineRecord | undefined;
    let done = false;
    const finish = (f: () => void) => {
      if (done) return;
      done = true;
      unsubscribe();
      clearTimeout(timer);
      o.signal.removeEventListener("abort", onAbort);
      f();
    };
    const check = (rec: MachineRecord) => {
      last = rec;
      if (rec.status === o.status) finish(() => resolve(rec));
      // A machine that failed will not become running by itself: say so now, not after the timeout.
      else if (o.status === "running" && rec.status === "failed") {
        const why = rec.lastError ? `: ${rec.lastError.code}: ${rec.lastError.message}` : "";
        finish(() =>
          reject(new HyperfleetError("MACHINE_FAILED", `machine ${o.id} failed${why}`, { details: { current_status: "failed" } })),
        );
      }
    };
    const onAbort = () =>
      finish(() => reject(new HyperfleetError("SHUTTING_DOWN", "the wait was cancelled (client gone or daemon shutting down)")));
    const unsubscribe = o.bus.subscribe(o.id, (c) => {
      if (c.kind === "updated") check(c.machine);
      else finish(() => reject(new HyperfleetError("MACHINE_NOT_FOUND", `machine ${o.id} was deleted while waiting`)));
    });
    const timer = setTimeout(() => {
      const current = last?.status ?? "unknown";
      finish(() =>
        reject(
          new HyperfleetError(
            "WAIT_TIMEOUT",
            `machine ${o.id} did not reach '${o.status}' within ${o.timeoutMs / 1000} s (it is '${current}'); wait again or check GET /machines/${o.id}`,
            { details: { current_status: current } },
          ),
        ),
      );
    }, o.timeoutMs);
    if (o.signal.aborted) return onAbort();
    o.signal.addEventListener("abort", onAbort, { once: true });
    o.get(o.id).then(
      (rec) => {
        if (last === undefined) check(rec);
      },
      (e: unknown) => finish(() => reject(e)),
    );
  });
}
