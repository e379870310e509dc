/**
 * Image machines' main processes: started with a detached exec after every boot (not after a
 * daemon restart adopts a running VM: the process is still there), and observed through the
 * guest's status file. A main process that cannot start does not fail the machine: the VM is
 * up and exec works, which is what one needs to find out why; the failure shows on the machine.
 */
import type { FastifyBaseLogger } from "fastify";
import { HyperfleetError, toHyperfleetError } from "../core/errors.js";
import type { Machine } from "../lib/machine.js";
import type { MainProcessView } from "../api/service.js";
import type { MachineRecord } from "../store/records.js";
import { execDefaults, MAIN_LOG_PATH, mainProcessSpec, parseMainStatus } from "./run-spec.js";
import { within } from "./timeout.js";

/** Longest we wait for the guest to start the process or to return its status file. */
const AGENT_CALL_TIMEOUT_MS = 10_000;
const STATUS_READ_TIMEOUT_MS = 2_000;

export class MainProcesses {
  /** Why the current boot's main process did not start, per machine. */
  private readonly failures = new Map<string, { code: string; message: string }>();

  /** Starts the machine's main process, if its image (or its overrides) name one. Never throws. */
  async start(rec: MachineRecord, machine: Machine, log: FastifyBaseLogger): Promise<void> {
    this.failures.delete(rec.id);
    if (rec.imageRef === null) return;
    const spec = mainProcessSpec(rec);
    const agent = machine.agentClient;
    // Docker creates a WorkingDir the image does not have; without it every exec would fail.
    const cwd = execDefaults(rec).cwd;
    if (cwd !== undefined && agent) await within(agent.mkdir(cwd, { parents: true }), AGENT_CALL_TIMEOUT_MS, "AGENT_TIMEOUT", "creating the working directory").catch(() => undefined);
    if (spec === null) return;
    try {
      if (!agent) throw new HyperfleetError("AGENT_DISCONNECTED", "the guest agent connection closed right after the boot");
      const { pid } = await within(agent.execDetached(spec.argv, { env: spec.env, cwd: spec.cwd, user: spec.user, logPath: MAIN_LOG_PATH }), AGENT_CALL_TIMEOUT_MS, "AGENT_TIMEOUT", "starting the main process");
      log.info({ pid, argv0: spec.argv[0], args: spec.argv.length }, "main process started");
    } catch (e) {
      const he = toHyperfleetError(e);
      this.failures.set(rec.id, { code: he.code, message: he.message });
      log.warn({ code: he.code, err: he }, "main process did not start; the machine runs without it");
    }
  }

  /** The main process as the guest records it; null when there is none or it cannot be read now. */
  async state(rec: MachineRecord, machine: Machine | undefined): Promise<MainProcessView | null> {
    if (rec.imageRef === null || rec.status !== "running" || !machine) return null;
    const failed = this.failures.get(rec.id);
    if (failed) return { status: "failed", pid: null, exitCode: null, signal: null, startedAt: null, exitedAt: null, error: failed };
    const agent = machine.agentClient;
    if (!agent || mainProcessSpec(rec) === null) return null;
    try {
      const text = await within(agent.readFile(`${MAIN_LOG_PATH}.status`, { maxBytes: 4096 }), STATUS_READ_TIMEOUT_MS, "AGENT_TIMEOUT", "reading the main process status");
      return parseMainStatus(text.toString("utf8"));
    } catch {
      return null; // not started yet, or the guest is busy: the next GET will tell
    }
  }

  forget(id: string): void {
    this.failures.delete(id);
  }
}
