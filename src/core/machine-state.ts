/**
 * The machine lifecycle as a pure transition table. The service layer asks this module whether a
 * status change is allowed before it persists anything; nothing here does I/O, so a restarted daemon
 * and the API agree on what a state means.
 *
 * The lifecycle state (this table) is kept apart from the VMM process state (`VmmStatus`): a machine
 * is `stopping` while its QEMU is still `running`, and `running` only once the guest agent answered.
 */
import { HyperfleetError } from "./errors.js";
import { err, ok, type Result } from "./result.js";

/** Every lifecycle status, in the order a machine normally goes through them. */
export const MACHINE_STATUSES = [
  "created",
  "starting",
  "running",
  "paused",
  "suspended",
  "stopping",
  "stopped",
  "failed",
  "destroying",
] as const;

export type MachineStatus = (typeof MACHINE_STATUSES)[number];

/**
 * Allowed status changes, `from -> [to...]`. Why some edges exist:
 * - `created -> failed`: the machine's OCI image could not be pulled (nothing was booted).
 * - `starting -> stopping|destroying`: a user may stop or delete a machine that is still booting.
 * - `running -> stopped|failed`: the VMM exited on its own (guest poweroff, or killed / crashed).
 * - `failed -> stopped`: cleaning up a failed machine's leftover VMM is a stop.
 * - `destroying -> failed`: deleting can fail half-way (the VMM refuses to die); the row stays.
 * - `running <-> paused`: the VMM froze the guest's vCPUs (pause) or let them run again (resume).
 * - `paused -> stopping`: a stop resumes the guest first, so it powers off as gracefully as a
 *   running one (a frozen guest cannot sync its disks); a delete kills it paused.
 * - `paused -> stopped|failed`: the VMM exited while paused, read as it would be while running.
 * - `running|paused -> suspended`: the VM was saved to disk and its VMM ended (no process, no RAM).
 * - `suspended -> starting`: resume (or start) restores it; `suspended -> stopped`: a stop throws
 *   the saved state away, so the next start boots afresh.
 */
export const TRANSITIONS: Readonly<Record<MachineStatus, readonly MachineStatus[]>> = Object.freeze({
  created: ["starting", "failed", "destroying"],
  starting: ["running", "stopping", "stopped", "failed", "destroying"],
  running: ["paused", "suspended", "stopping", "stopped", "failed", "destroying"],
  paused: ["running", "suspended", "stopping", "stopped", "failed", "destroying"],
  suspended: ["starting", "stopped", "destroying"],
  stopping: ["stopped", "failed", "destroying"],
  stopped: ["starting", "destroying"],
  failed: ["starting", "stopped", "destroying"],
  destroying: ["failed"],
});

/** What a user can ask for; each names the first status it moves the machine to. */
export type MachineAction = "start" | "stop" | "restart" | "delete" | "pause" | "resume" | "suspend";

/** First status of each user action. `restart` of a running machine begins with a stop. */
export function actionTarget(action: MachineAction, current: MachineStatus): MachineStatus {
  switch (action) {
    case "start":
      return "starting";
    case "stop":
      // Nothing runs: throwing the saved state away is all a stop does.
      return current === "suspended" ? "stopped" : "stopping";
    case "restart":
      return current === "running" ? "stopping" : "starting";
    case "delete":
      return "destroying";
    case "pause":
      return "paused";
    case "resume":
      return current === "suspended" ? "starting" : "running";
    case "suspend":
      return "suspended";
  }
}

export function isMachineStatus(s: unknown): s is MachineStatus {
  return typeof s === "string" && (MACHINE_STATUSES as readonly string[]).includes(s);
}

export function canTransition(from: MachineStatus, to: MachineStatus): boolean {
  return TRANSITIONS[from].includes(to);
}

/**
 * Checks `from -> to`; the error carries the current status so the API can answer 409 with it.
 *
 * @example
 * checkTransition("stopped", "stopping") // Err(INVALID_STATE_TRANSITION, details.current_status = "stopped")
 */
export function checkTransition(from: MachineStatus, to: MachineStatus, what?: string): Result<MachineStatus> {
  if (canTransition(from, to)) return ok(to);
  const verb = what ?? `move to '${to}'`;
  return err(
    new HyperfleetError(
      "INVALID_STATE_TRANSITION",
      `cannot ${verb}: the machine is '${from}'`,
      { details: { current_status: from, requested_status: to } },
    ),
  );
}

/**
 * Checks a user action against the current status.
 *
 * @example
 * checkAction("start", "running") // Err: cannot start: machine is 'running' ...
 */
export function checkAction(action: MachineAction, current: MachineStatus): Result<MachineStatus> {
  // `starting -> running` is the boot's own edge, not something a user resumes.
  if (action === "resume" && current !== "paused" && current !== "suspended") return checkTransition(current, current, action);
  return checkTransition(current, actionTarget(action, current), action);
}

/** Statuses in which a VMM process may exist and must be looked after (adopted, killed, waited on). */
export const LIVE_STATUSES: readonly MachineStatus[] = ["starting", "running", "paused", "stopping", "destroying"];

/**
 * What an unexpected VMM exit means: a guest that powered off by itself (exit 0) is `stopped`; a
 * killed or crashed VMM, or one whose exit we could not observe, is `failed`.
 */
export function statusAfterUnexpectedExit(exitCode: number | null | undefined): MachineStatus {
  return exitCode === 0 ? "stopped" : "failed";
}
