/**
 * Boot sequence shared by the Machine class and the KVM probe: spawn the VMM, open the agent
 * channel and complete the handshake. One-shot: on failure everything started here is undone.
 */
import { HyperfleetError, toHyperfleetError } from "../core/errors.js";
import type { VmHandle, VmmDriver, VmSpec } from "../core/ports/vmm-driver.js";
import { AgentClient } from "../agent/client.js";
import { sleep } from "../host/async.js";

export interface BootedVm {
  handle: VmHandle;
  agent: AgentClient;
}

/**
 * Connects to the agent of a running VM; rejects early if the VMM exits meanwhile. A fresh boot
 * gets one attempt with the whole timeout. A reconnect (adopting a running VM) may find the channel
 * inside a frame the previous host left half-sent, which swallows our HELLO: then we hang up, pause
 * so the guest notices, and retry (docs/agent-protocol.md, "Reconnecting on virtio-serial").
 */
export async function connectAgent(handle: VmHandle, timeoutMs: number, signal?: AbortSignal, opts: { fresh?: boolean; firstReplyMs?: number } = {}): Promise<AgentClient> {
  if (opts.fresh) return connectOnce(handle, timeoutMs, signal);
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 1; ; attempt++) {
    const left = deadline - Date.now();
    // A caller that expects a quick answer (a restored guest answers in tens of ms) gives up on a
    // swallowed HELLO sooner; the wait doubles with each attempt, up to the usual one.
    const reply = Math.min(RECONNECT_REPLY_MS, (opts.firstReplyMs ?? RECONNECT_REPLY_MS) * 2 ** (attempt - 1));
    try {
      return await connectOnce(handle, Math.min(reply, Math.max(left, 1)), signal);
    } catch (e) {
      const retriable = e instanceof HyperfleetError && e.code === "AGENT_TIMEOUT";
      if (!retriable || Date.now() + RECONNECT_PAUSE_MS >= deadline) throw e;
      await sleep(RECONNECT_PAUSE_MS, signal);
    }
  }
}

const RECONNECT_REPLY_MS = 3_000;
const RECONNECT_PAUSE_MS = 200;

async function connectOnce(handle: VmHandle, timeoutMs: number, signal?: AbortSignal): Promise<AgentClient> {
  const stream = await handle.connectAgent(signal);
  const exited = handle.exited().then(() => {
    throw new HyperfleetError("VMM_EXITED", `the VM ${handle.id} exited before its agent answered; see ${handle.consoleLogPath}`);
  });
  const connecting = AgentClient.connect(stream, { timeoutMs, ...(signal ? { signal } : {}) });
  try {
    return await Promise.race([connecting, exited]);
  } catch (e) {
    stream.destroy();
    connecting.catch(() => undefined);
    throw e;
  } finally {
    exited.catch(() => undefined);
  }
}

export async function bootVm(driver: VmmDriver, spec: VmSpec, timeoutMs: number, signal?: AbortSignal): Promise<BootedVm> {
  const handle = await driver.start(spec, signal);
  try {
    const agent = await connectAgent(handle, timeoutMs, signal, { fresh: true });
    return { handle, agent };
  } catch (e) {
    // Whether the VMM died on its own must be asked before we kill it.
    const diedOnItsOwn = (await handle.status().catch(() => null))?.state === "exited";
    await handle.kill().catch(() => undefined);
    const tail = diedOnItsOwn ? ((await handle.logTail?.().catch(() => "")) ?? "") : "";
    await handle.cleanup().catch(() => undefined);
    let err = toHyperfleetError(e, "VM_START_TIMEOUT");
    if (err.code === "AGENT_TIMEOUT") err = new HyperfleetError("VM_START_TIMEOUT", `VM ${spec.id} did not become ready within ${timeoutMs} ms; see ${handle.consoleLogPath}`, { cause: e });
    // The VMM's own words (e.g. why it could not go on) say more than "exited".
    if (tail) err = new HyperfleetError(err.code, `${err.message}; the VMM's log ends with: ${tail}`, { cause: e, ...(err.details ? { details: err.details } : {}) });
    throw err;
  }
}
