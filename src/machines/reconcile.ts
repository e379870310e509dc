/**
 * Startup reconciliation: the store says which machines had a VMM when the previous daemon ended
 * (stopped or crashed); this re-adopts those still running (or paused: QMP says so), fails boots that were cut short,
 * records the ones that died, finishes interrupted stops and deletes, records image pulls cut
 * short, then ends every QEMU in our run dirs that no machine holds (found in /proc, not from what
 * was recorded: a crash between spawn and record leaves nothing recorded) and removes run dirs
 * that no machine owns.
 * Every step is idempotent, so a daemon killed during reconciliation just runs it again.
 */
import { readdir, rm } from "node:fs/promises";
import { basename, join } from "node:path";
import type { Logger } from "../core/ports/logger.js";
import { LIVE_STATUSES } from "../core/machine-state.js";
import type { ErrorRef, MachineRecord } from "../core/machine.js";
import type { MachineRepository } from "../store/machine-repository.js";
import type { VmFactory } from "./vm-factory.js";
import { forceKill, type VmLifecycle } from "./lifecycle.js";
import type { MachineNetworks } from "./networks.js";
import { readSuspended } from "./suspend-files.js";

export interface ReconcileDeps {
  repo: MachineRepository;
  vms: VmFactory;
  lifecycle: VmLifecycle;
  networks: MachineNetworks;
  log: Logger;
}

export interface ReconcileReport {
  adopted: string[];
  died: string[];
  stopped: string[];
  deleted: string[];
  orphans: string[];
  /** Pids of QEMU processes in our run dirs that no machine held, killed. */
  strays: number[];
  /** Machines whose image pull the previous daemon did not finish. */
  pullsInterrupted: string[];
  /** Network namespaces and host veths no running machine owned, deleted. */
  networks: { namespaces: string[]; links: string[] };
}

const RUN_DIR_NAME = /^vm_[0-9A-HJKMNP-TV-Z]{26}$/;

export async function reconcile(d: ReconcileDeps): Promise<ReconcileReport> {
  const report: ReconcileReport = { adopted: [], died: [], stopped: [], deleted: [], orphans: [], strays: [], pullsInterrupted: [], networks: { namespaces: [], links: [] } };
  const live = await d.repo.list({ status: LIVE_STATUSES });
  const vmm = await d.vms.vmmKind();
  for (const rec of live) {
    const log = d.log.child({ machine_id: rec.id });
    if (rec.vmm !== vmm) {
      // Another VMM's process cannot be adopted, stopped or told dead by this one's driver: left
      // as it was for a daemon running its VMM (its start answers 409 VMM_MISMATCH meanwhile).
      log.warn({ status: rec.status, machine_vmm: rec.vmm, daemon_vmm: vmm }, "machine belongs to another VMM; left as it was");
      continue;
    }
    try {
      await reconcileOne(d, rec, report, log);
    } catch (e) {
      // One machine we cannot sort out must not keep the daemon from serving the others.
      log.error({ err: e, status: rec.status }, "could not reconcile machine; left as it was");
    }
  }
  await killStrays(d, report);
  await removeOrphans(d, report);
  // A machine's rules leave the host table before it leaves these statuses: only such a machine's
  // may be stale.
  await sweepNetworks(d, report, live.some((r) => r.network !== null));
  await endInterruptedPulls(d, report);
  d.log.info(
    { adopted: report.adopted.length, died: report.died.length, stopped: report.stopped.length, deleted: report.deleted.length, orphans: report.orphans.length, strays: report.strays.length, pulls_interrupted: report.pullsInterrupted.length },
    "reconciled machines with their VMM processes",
  );
  return report;
}

/** Finishes what the previous daemon was doing, with the same lifecycle steps it would have run. */
async function reconcileOne(d: ReconcileDeps, rec: MachineRecord, report: ReconcileReport, log: Logger): Promise<void> {
  const lc = d.lifecycle;
  // No root disk recorded: an image machine that never got past its pull, so no VMM was spawned.
  const adopt = () => (rec.rootfsPath === null || rec.kernelImagePath === null ? Promise.resolve(null) : d.vms.adopt(rec));
  if (rec.status === "destroying" || rec.status === "stopping") {
    const m = await adopt();
    if (m) lc.live.set(rec.id, m);
    if (rec.status === "destroying") {
      await lc.destroy(rec, log);
      report.deleted.push(rec.id);
    } else {
      await lc.halt(rec.id, log);
      report.stopped.push(rec.id);
    }
    return;
  }
  if (rec.status === "starting") {
    // The boot's steps (pull, main process) died with the daemon: whatever QEMU it left is ended
    // by killStrays, and the machine can be started again.
    const lastError: ErrorRef = { code: "VMM_EXITED", message: "the boot was interrupted by a daemon restart; start the machine again" };
    await lc.settle(rec.id, ["starting"], "failed", { pid: null, lastError }, "boot interrupted by a daemon restart");
    report.died.push(rec.id);
    return;
  }
  // running or paused
  const m = await adopt();
  // A frozen guest's agent cannot answer: QMP says it is paused, so it is adopted as it was (a
  // pause recorded or not, the VMM's own state is what holds).
  if (m && (await m.status()).state === "paused") {
    await lc.adoptPaused(rec, m, log);
    report.adopted.push(rec.id);
    return;
  }
  if (m && m.agent !== null) {
    await lc.adoptRunning(rec, m, log);
    report.adopted.push(rec.id);
    return;
  }
  // The previous daemon died between saving a suspend and recording it: the state is complete.
  if (!m && (await readSuspended(rec.runDir)) !== null) {
    await lc.settle(rec.id, [rec.status], "suspended", { pid: null, restoreFrom: "suspend" }, "suspend finished after daemon restart");
    report.stopped.push(rec.id);
    return;
  }
  let lastError: ErrorRef = { code: "VMM_EXITED", message: "the VMM process exited while the daemon was not running" };
  if (m) {
    // Alive but deaf: the guest hung. A running machine means "the agent answers", so this one is
    // killed and reported.
    await forceKill(m);
    lastError = { code: "AGENT_DISCONNECTED", message: "the guest agent did not answer after the daemon restarted; the VMM was killed" };
  }
  await lc.settle(rec.id, [rec.status], "failed", { pid: null, lastError }, "found dead after daemon restart");
  report.died.push(rec.id);
}

/**
 * A pull does not survive the daemon (its credentials were only in memory), so one still marked
 * `pulling` was cut short: say so, and fail a machine that was waiting for it in `created`.
 * Starting the machine pulls again.
 */
async function endInterruptedPulls(d: ReconcileDeps, report: ReconcileReport): Promise<void> {
  const error: ErrorRef = { code: "IMAGE_PULL_ABORTED", message: "the daemon stopped during the image pull; start the machine to pull again" };
  for (const rec of await d.repo.list()) {
    if (rec.imagePull?.status !== "pulling") continue;
    const imagePull = { ...rec.imagePull, status: "failed" as const, error, finishedAt: new Date().toISOString() };
    await d.repo.update(rec.id, { imagePull });
    if (rec.status === "created") await d.lifecycle.settle(rec.id, ["created"], "failed", { lastError: error }, "image pull interrupted by a daemon restart");
    report.pullsInterrupted.push(rec.id);
  }
}

/**
 * Ends every QEMU whose command line points into one of our run dirs and that no machine holds
 * now: a boot cut short, a VMM whose machine was failed or deleted while it still ran, one whose
 * run dir no machine owns. Adoption above already took every VMM a machine should keep.
 */
async function killStrays(d: ReconcileDeps, report: ReconcileReport): Promise<void> {
  const held = new Set(d.lifecycle.live.all().map(([, m]) => m.pid));
  for (const v of await d.vms.findVmms()) {
    if (held.has(v.pid)) continue;
    try {
      if (await d.vms.killFound(v)) {
        report.strays.push(v.pid);
        d.log.warn({ machine_id: basename(v.runDir), pid: v.pid }, "killed a VMM no machine held");
      }
    } catch (e) {
      d.log.error({ err: e, machine_id: basename(v.runDir), pid: v.pid }, "could not kill a VMM no machine held");
    }
  }
}

/**
 * Once every VMM that should not run is gone: namespaces and veths of machines that are not
 * running go (a crash mid-start or mid-stop leaves them), and the host rules are rebuilt for the
 * adopted machines. A failure is logged: the daemon still serves, and the next restart retries.
 */
async function sweepNetworks(d: ReconcileDeps, report: ReconcileReport, earlierMayHaveRules: boolean): Promise<void> {
  try {
    report.networks = await d.networks.reconcile(earlierMayHaveRules);
    if (report.networks.namespaces.length + report.networks.links.length > 0) d.log.warn(report.networks, "removed network namespaces and links no running machine owned");
  } catch (e) {
    d.log.error({ err: e }, "could not reconcile VM networks");
  }
}

/** Removes run dirs that no machine owns (their VMMs were ended by killStrays). */
async function removeOrphans(d: ReconcileDeps, report: ReconcileReport): Promise<void> {
  let names: string[];
  try {
    names = await readdir(d.vms.runDirBase);
  } catch {
    return; // no run dir base yet: nothing was ever started
  }
  const known = new Set((await d.repo.list()).map((r) => r.id));
  for (const name of names.filter((n) => RUN_DIR_NAME.test(n) && !known.has(n))) {
    const runDir = join(d.vms.runDirBase, name);
    try {
      // A VMM that started using the dir after the sweep above would survive its removal.
      const killed = await d.vms.killVmmsIn(runDir);
      await rm(runDir, { recursive: true, force: true });
      report.orphans.push(name);
      d.log.warn({ machine_id: name, had_vmm: killed.length > 0 }, "removed orphaned run dir");
    } catch (e) {
      d.log.error({ err: e, machine_id: name }, "could not remove orphaned run dir");
    }
  }
}
