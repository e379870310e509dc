/**
 * In-process notifications of machine changes, so `wait` answers the moment a status is persisted
 * instead of polling the store.
 */
import { EventEmitter } from "node:events";
import type { MachineRecord } from "../core/machine.js";

export type MachineChange = { kind: "updated"; machine: MachineRecord } | { kind: "deleted"; id: string };

/** The event every change is also emitted under (ids are `vm_...`, so it cannot clash). */
const ALL = Symbol("all machines");

export class StatusBus {
  private readonly ee = new EventEmitter();

  constructor() {
    // One listener per pending wait request; there is no fixed upper bound worth warning about.
    this.ee.setMaxListeners(0);
  }

  publish(change: MachineChange): void {
    const id = change.kind === "deleted" ? change.id : change.machine.id;
    this.ee.emit(id, change);
    this.ee.emit(ALL, change);
  }

  /** Calls `fn` on every change of any machine until the returned function is called (the supervisor). */
  subscribeAll(fn: (c: MachineChange) => void): () => void {
    this.ee.on(ALL, fn);
    return () => this.ee.off(ALL, fn);
  }

  /** Calls `fn` on every change of machine `id` until the returned function is called. */
  subscribe(id: string, fn: (c: MachineChange) => void): () => void {
    this.ee.on(id, fn);
    return () => this.ee.off(id, fn);
  }

  /** Drops every subscriber (daemon shutdown). */
  clear(): void {
    this.ee.removeAllListeners();
  }
}
