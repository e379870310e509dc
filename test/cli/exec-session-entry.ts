/**
 * `hyperfleet shell` until the CLI (branch sdk-cli) wires src/cli/exec-session.ts in: run under
 * tmux by test/cli/shell.test.ts. Usage: exec-session-entry.ts URL MACHINE_ID [CMD...]
 * (HYPERFLEET_API_KEY from the environment); exits with the guest command's status.
 */
import { runExecSession } from "../../src/cli/exec-session.js";

const [url, id, ...cmd] = process.argv.slice(2);
if (!url || !id) {
  process.stderr.write("usage: exec-session-entry.ts URL MACHINE_ID [CMD...]\n");
  process.exit(2);
}
const tty = process.stdin.isTTY === true && process.stdout.isTTY === true;
const status = await runExecSession({
  url,
  machineId: id,
  command: cmd.length ? cmd : ["/bin/sh"],
  tty,
  interactive: true,
  input: process.stdin,
  output: process.stdout,
  errors: process.stderr,
  ...(process.env.HYPERFLEET_API_KEY !== undefined && { apiKey: process.env.HYPERFLEET_API_KEY }),
});
process.exit(status);
