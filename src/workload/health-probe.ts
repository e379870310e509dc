/**
 * Running one health check: an HTTP GET from the daemon to the machine's `network.ip` (ADR 0008:
 * the host reaches every VM there), or a command through the guest agent like an exec. Both are
 * bounded in time (the check's timeout) and in what they keep (a few KiB for the error text).
 */
import { request } from "node:http";
import type { HealthProbe } from "../core/health.js";
import type { MachineRecord } from "../core/machine.js";
import type { Vm } from "../vmm/vm.js";
import { execDefaults } from "./run-spec.js";
import { within } from "../host/async.js";
import { toHyperfleetError } from "../core/errors.js";

export interface ProbeResult {
  ok: boolean;
  /** Why it failed (bounded); null when it passed. */
  error: string | null;
}

/** Output kept of an exec check, per stream; only its start goes into `last_error`. */
const EXEC_OUTPUT_MAX = 4096;
const ERROR_TEXT_MAX = 200;
/** The agent reports a timed-out exec a little after the guest killed it. */
const EXEC_HOST_GRACE_MS = 5_000;

export async function runProbe(probe: HealthProbe, rec: MachineRecord, vm: Vm, timeoutMs: number): Promise<ProbeResult> {
  try {
    return probe.kind === "exec" ? await execProbe(probe.argv, rec, vm, timeoutMs) : await httpProbe(rec, probe.port, probe.path, timeoutMs);
  } catch (e) {
    return { ok: false, error: clip(toHyperfleetError(e).message) };
  }
}

async function execProbe(argv: string[], rec: MachineRecord, vm: Vm, timeoutMs: number): Promise<ProbeResult> {
  const agent = vm.agent;
  if (agent === null) return { ok: false, error: "the guest agent is not connected" };
  const d = execDefaults(rec);
  const r = await within(
    agent.exec(argv, { env: d.env, timeoutMs, maxOutputBytes: EXEC_OUTPUT_MAX, ...(d.cwd !== undefined && { cwd: d.cwd }), ...(d.user !== undefined && { user: d.user }) }),
    timeoutMs + EXEC_HOST_GRACE_MS,
    "AGENT_TIMEOUT",
    "the guest agent's answer to the health check",
  );
  if (r.timedOut) return { ok: false, error: `timed out after ${timeoutMs} ms` };
  if (r.exitCode === 0) return { ok: true, error: null };
  const out = (r.stderr.length > 0 ? r.stderr : r.stdout).toString("utf8").trim();
  const how = r.signal !== null ? `killed by signal ${r.signal}` : `exit code ${r.exitCode}`;
  return { ok: false, error: clip(out ? `${how}: ${out}` : how) };
}

function httpProbe(rec: MachineRecord, port: number, path: string, timeoutMs: number): Promise<ProbeResult> {
  const ip = rec.network?.ip;
  if (ip === undefined) return Promise.resolve({ ok: false, error: "the machine has no network" });
  return new Promise((resolve) => {
    const req = request({ host: ip, port, path, method: "GET", timeout: timeoutMs, headers: { "user-agent": "hyperfleet-health", connection: "close" } }, (res) => {
      const status = res.statusCode ?? 0;
      // The body is not looked at: dropped as it comes, so a large one holds nothing.
      res.resume();
      res.on("error", () => undefined);
      req.destroy();
      resolve(status >= 200 && status < 400 ? { ok: true, error: null } : { ok: false, error: `HTTP ${status}` });
    });
    const deadline = setTimeout(() => req.destroy(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
    req.on("timeout", () => req.destroy(new Error(`timed out after ${timeoutMs} ms`)));
    req.on("error", (e) => resolve({ ok: false, error: clip(e.message) }));
    req.on("close", () => clearTimeout(deadline));
    req.end();
  });
}

function clip(s: string): string {
  return s.length > ERROR_TEXT_MAX ? `${s.slice(0, ERROR_TEXT_MAX)}...` : s;
}
