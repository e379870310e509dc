/**
 * Runs the daemon until SIGTERM/SIGINT. VMs are separate processes in their own sessions, so they
 * keep running when the daemon stops or crashes; the next start re-adopts them.
 */
import { isHyperfleetError } from "../core/errors.js";
import { forgetCredentials, loadConfig } from "../config/config.js";
import { startDaemon } from "./daemon.js";

/** sysexits EX_CONFIG: the configuration is wrong, restarting will not help. */
const EX_CONFIG = 78;
/** Longest a graceful shutdown may take beyond stopping VMs (a long exec request would otherwise hold it up). */
const SHUTDOWN_GRACE_MS = 15_000;

export async function runDaemon(): Promise<void> {
  const cfg = loadConfig();
  if (!cfg.ok) {
    process.stderr.write(`hyperfleet: ${cfg.error.message}\n`);
    process.exit(EX_CONFIG);
  }
  forgetCredentials();
  let daemon;
  try {
    daemon = await startDaemon(cfg.value);
  } catch (e) {
    process.stderr.write(`hyperfleet: cannot start: ${isHyperfleetError(e) ? `${e.code}: ${e.message}` : String(e)}\n`);
    process.exit(1);
  }
  const d = daemon;
  const config = cfg.value;
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    // A second signal means "now": VMs are unaffected either way.
    if (++signals > 1) process.exit(1);
    d.log.info({ signal: sig }, "signal received");
    const deadline = SHUTDOWN_GRACE_MS + (config.stopVmsOnExit ? config.stopTimeoutMs : 0);
    setTimeout(() => {
      d.log.warn({ deadline_ms: deadline }, "shutdown took too long; exiting anyway");
      process.exit(1);
    }, deadline).unref();
    d.close().then(
      () => process.exit(0),
      (e: unknown) => {
        d.log.error({ err: e }, "unclean shutdown");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  process.on("uncaughtException", (e) => {
    d.log.fatal({ err: e }, "uncaught exception; exiting (VMs keep running and are re-adopted on restart)");
    process.exit(1);
  });
}

