/**
 * A VM we hold: its VMM process handle and its guest agent connection, nothing else. The daemon's
 * machines layer and the in-process Machine both hold VMs this way and call the agent client
 * directly; what a VM is for (a machine's status, its record) lives above.
 */
import type { AgentClient } from "../agent/client.js";
import { toHyperfleetError } from "../core/errors.js";
import type { VmHandle, VmmDriver, VmmStatus, VmSnapshot, VmSpec } from "../core/ports/vmm-driver.js";
import { sleep } from "../host/async.js";
import { bootVm, connectAgent } from "./boot.js";

/**
 * A restored guest answers its new host in tens of milliseconds, unless the snapshot froze its
 * agent inside a frame from the old host, which then swallows our HELLO: hang up and retry soon.
 */
const RESTORE_FIRST_REPLY_MS = 400;

/** How long an adopted VM's agent has to answer before we keep the VM without it. */
const ADOPT_AGENT_TIMEOUT_MS = 10_000;

export class Vm {
  private agentConn: AgentClient | null = null;

  private constructor(
    readonly handle: VmHandle,
    agent: AgentClient | null,
  ) {
    if (agent) this.attach(agent);
  }

  /** Spawns the VMM and waits until the guest agent answers; on failure nothing is left running. */
  static async boot(driver: VmmDriver, spec: VmSpec, timeoutMs: number, signal?: AbortSignal): Promise<Vm> {
    const { handle, agent } = await bootVm(driver, spec, timeoutMs, signal);
    return new Vm(handle, agent);
  }

  /**
   * Starts a VM from a snapshot (VmmDriver.restore) and reconnects its agent; on failure nothing
   * is left running. Not a fresh connection: the guest agent had a host before the snapshot and
   * may be inside a frame that host left half-sent (connectAgent retries).
   */
  static async restore(driver: VmmDriver, spec: VmSpec, snapshot: VmSnapshot, timeoutMs: number, signal?: AbortSignal): Promise<Vm> {
    const handle = await driver.restore(spec, snapshot, signal);
    try {
      return new Vm(handle, await connectAgent(handle, timeoutMs, signal, { firstReplyMs: RESTORE_FIRST_REPLY_MS }));
    } catch (e) {
      await handle.kill().catch(() => undefined);
      await handle.cleanup().catch(() => undefined);
      throw toHyperfleetError(e, "SNAPSHOT_FAILED");
    }
  }

  /**
   * Re-attaches to the VMM an earlier process left in `runDir`; null when it is gone. A VMM whose
   * agent does not answer is still returned (agent null), so it can be stopped.
   */
  static async adopt(driver: VmmDriver, id: string, runDir: string): Promise<Vm | null> {
    const handle = await driver.adopt(id, runDir);
    if (!handle) return null;
    // A paused guest's agent cannot answer: it is connected on resume.
    if ((await handle.status()).state === "paused") return new Vm(handle, null);
    const agent = await connectAgent(handle, ADOPT_AGENT_TIMEOUT_MS).catch(() => null);
    return new Vm(handle, agent);
  }

  get pid(): number {
    return this.handle.pid;
  }

  /** The agent connection; null once it closed (the VM stopped, or the guest hung up). */
  get agent(): AgentClient | null {
    return this.agentConn && !this.agentConn.closed ? this.agentConn : null;
  }

  status(): Promise<VmmStatus> {
    return this.handle.status();
  }

  /** Resolves when the VMM process is gone (including when it is killed from outside). */
  exited(): Promise<VmmStatus> {
    return this.handle.exited();
  }

  /** Freezes the guest (VmHandle.pause); the agent connection stays open, unanswered until resume. */
  pause(): Promise<void> {
    return this.handle.pause();
  }

  /**
   * Lets the guest run again, then makes sure the agent answers (an adopted paused VM has no
   * connection yet); the agent is null if it does not answer within timeoutMs.
   */
  async resume(timeoutMs: number): Promise<void> {
    await this.handle.resume();
    if (this.agent) return;
    const agent = await connectAgent(this.handle, timeoutMs).catch(() => null);
    if (agent) this.attach(agent);
  }

  /**
   * Graceful stop: the agent powers the guest off (processes get SIGTERM, disks are synced); if
   * that does not end the VM in time the VMM is asked to stop, and finally killed.
   */
  async shutdown(timeoutMs: number): Promise<void> {
    const h = this.handle;
    const deadline = Date.now() + timeoutMs;
    // A frozen guest cannot power itself off (nor sync its disks): let it run first.
    if ((await h.status()).state === "paused") await h.resume().catch(() => undefined);
    const agent = this.agent;
    if (agent) await agent.shutdown().catch(() => undefined);
    const graceful = await Promise.race([h.exited().then(() => true), sleep(Math.max(0, deadline - Date.now())).then(() => false)]);
    if (!graceful) await h.requestStop(Math.max(1_000, deadline - Date.now())).catch(() => h.kill());
    await this.release();
  }

  /** SIGKILLs the VMM process and lets go of the VM. */
  async kill(): Promise<void> {
    await this.handle.kill();
    await this.release();
  }

  /** Closes the agent connection and removes the VMM's runtime files; the VMM itself is left as it is. */
  async release(): Promise<void> {
    this.agentConn?.close();
    this.agentConn = null;
    await this.handle.cleanup().catch(() => undefined);
  }

  /** Lets go of the VM, which keeps running and keeps its files (daemon shutdown): the next daemon adopts it. */
  detach(): void {
    this.agentConn?.close();
    this.handle.detach();
  }

  private attach(agent: AgentClient): void {
    this.agentConn = agent;
    agent.onClose(() => {
      if (this.agentConn === agent) this.agentConn = null;
    });
  }
}
