import { test } from "node:test";
import assert from "node:assert/strict";
import {
  MACHINE_STATUSES,
  TRANSITIONS,
  LIVE_STATUSES,
  actionTarget,
  canTransition,
  checkAction,
  checkTransition,
  isMachineStatus,
  statusAfterUnexpectedExit,
  type MachineAction,
  type MachineStatus,
} from "../../src/core/machine-state.js";

test("the table covers every status and only names known statuses", () => {
  assert.deepEqual(Object.keys(TRANSITIONS).sort(), [...MACHINE_STATUSES].sort());
  for (const [from, tos] of Object.entries(TRANSITIONS)) {
    for (const to of tos) assert.ok(isMachineStatus(to), `${from} -> ${to}`);
    assert.ok(!tos.includes(from as MachineStatus), `${from} -> itself is not a transition`);
  }
  assert.ok(Object.isFrozen(TRANSITIONS));
});

test("the normal life of a machine is allowed", () => {
  const path: MachineStatus[] = ["created", "starting", "running", "stopping", "stopped", "starting", "running", "destroying"];
  for (let i = 1; i < path.length; i++) assert.ok(canTransition(path[i - 1]!, path[i]!), `${path[i - 1]} -> ${path[i]}`);
});

test("actions: allowed and refused, by status", () => {
  const allowed: Record<MachineAction, MachineStatus[]> = {
    start: ["created", "stopped", "failed", "suspended"],
    stop: ["starting", "running", "paused", "suspended"],
    restart: ["created", "running", "stopped", "failed", "suspended"],
    delete: ["created", "starting", "running", "paused", "suspended", "stopping", "stopped", "failed"],
    pause: ["running"],
    resume: ["paused", "suspended"],
    suspend: ["running", "paused"],
  };
  for (const [action, ok] of Object.entries(allowed) as Array<[MachineAction, MachineStatus[]]>) {
    for (const s of MACHINE_STATUSES) {
      const r = checkAction(action, s);
      assert.equal(r.ok, ok.includes(s), `${action} from ${s}`);
    }
  }
});

test("suspend: running or paused -> suspended; resume and start restore it (starting), stop discards it", () => {
  assert.equal(actionTarget("suspend", "running"), "suspended");
  assert.equal(actionTarget("resume", "suspended"), "starting");
  assert.equal(actionTarget("start", "suspended"), "starting");
  assert.equal(actionTarget("stop", "suspended"), "stopped");
  assert.ok(!LIVE_STATUSES.includes("suspended"), "a suspended machine has no VMM and holds no capacity");
});

test("pause and resume: running <-> paused; a paused VMM that dies is read as a running one", () => {
  assert.ok(canTransition("running", "paused"));
  assert.ok(canTransition("paused", "running"));
  for (const to of ["stopping", "stopped", "failed", "destroying"] as const) assert.ok(canTransition("paused", to), `paused -> ${to}`);
  // Only a running guest can be frozen: not one still booting, nor one being stopped.
  for (const from of ["created", "starting", "stopping", "stopped", "failed", "destroying"] as const) assert.ok(!canTransition(from, "paused"), `${from} -> paused`);
  // A resume is only from paused: a stopped machine is started, not resumed.
  for (const from of ["created", "stopped", "failed", "stopping", "destroying"] as const) assert.ok(!canTransition(from, "running"), `${from} -> running`);
  const r = checkAction("resume", "running");
  assert.equal(r.ok, false);
  if (!r.ok) assert.deepEqual(r.error.details, { current_status: "running", requested_status: "running" });
});

test("a refused action says the current status, as INVALID_STATE_TRANSITION", () => {
  const r = checkAction("stop", "stopped");
  assert.equal(r.ok, false);
  if (r.ok) return;
  assert.equal(r.error.code, "INVALID_STATE_TRANSITION");
  assert.equal(r.error.category, "conflict");
  assert.equal(r.error.details?.current_status, "stopped");
  assert.match(r.error.message, /cannot stop: the machine is 'stopped'/);
  assert.equal(checkTransition("destroying", "running").ok, false);
});

test("restart of a running machine stops it first", () => {
  assert.equal(actionTarget("restart", "running"), "stopping");
  assert.equal(actionTarget("restart", "stopped"), "starting");
});

test("an unexpected VMM exit: clean poweroff is stopped, anything else failed", () => {
  assert.equal(statusAfterUnexpectedExit(0), "stopped");
  assert.equal(statusAfterUnexpectedExit(1), "failed");
  assert.equal(statusAfterUnexpectedExit(null), "failed");
  assert.equal(statusAfterUnexpectedExit(undefined), "failed");
});

test("isMachineStatus", () => {
  assert.ok(isMachineStatus("running"));
  assert.ok(!isMachineStatus("RUNNING"));
  assert.ok(!isMachineStatus(3));
});
