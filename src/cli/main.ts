/**
 * `hyperfleet <verb>`: a Docker-like client of the daemon's API (built on the SDK, src/sdk) and
 * `serve`, the daemon itself. Talks to HYPERFLEET_URL with HYPERFLEET_API_KEY, or what
 * ~/.config/hyperfleet/config.json says.
 */
import { isHyperfleetError } from "../core/errors.js";
import type { Command } from "./command.js";
import { context, type Streams } from "./context.js";
import { cp } from "./commands/cp.js";
import { exec, shell } from "./commands/exec.js";
import { images, pull, rmi } from "./commands/images.js";
import { inspect } from "./commands/inspect.js";
import { restart, start, stop, wait } from "./commands/lifecycle.js";
import { logs } from "./commands/logs.js";
import { events } from "./commands/events.js";
import { ps } from "./commands/ps.js";
import { rm } from "./commands/rm.js";
import { run } from "./commands/run.js";
import { token } from "./commands/token.js";
import { secrets } from "./commands/secrets.js";
import { volume } from "./commands/volume.js";

const serve: Command = {
  name: "serve",
  summary: "run the API daemon",
  help: `usage: hyperfleet serve

Run the API daemon in the foreground, configured by environment variables (src/config/README.md).
`,
  async run(args, ctx) {
    if (args.includes("--help") || args.includes("-h")) {
      ctx.out.write(serve.help);
      return 0;
    }
    const { runDaemon } = await import("../daemon/run.js");
    await runDaemon();
    return -1; // keeps running; exits from its signal handlers
  },
};

export const COMMANDS: readonly Command[] = [run, ps, inspect, start, stop, restart, wait, rm, exec, shell, logs, events, cp, images, pull, rmi, token, secrets, volume, serve];

function usage(): string {
  const w = Math.max(...COMMANDS.map((c) => [c.name, ...(c.aliases ?? [])].join(", ").length));
  const lines = COMMANDS.map((c) => `  ${[c.name, ...(c.aliases ?? [])].join(", ").padEnd(w)}   ${c.summary}`);
  return `usage: hyperfleet <command> [options]

commands:
${lines.join("\n")}

'hyperfleet <command> --help' describes each. The client commands talk to HYPERFLEET_URL
(default http://127.0.0.1:3000) with the key HYPERFLEET_API_KEY; unset, they read
~/.config/hyperfleet/config.json: {"url": "...", "api_key": "..."}.
Exit status: 0, 1 on an error (its code is in the message), 2 on a usage error; run and exec: see their help.
`;
}

export function findCommand(name: string): Command | undefined {
  return COMMANDS.find((c) => c.name === name || c.aliases?.includes(name));
}

/** Runs one invocation; resolves with the exit status (-1: keep running, `serve`). */
export async function main(argv: readonly string[], streams: Streams = { out: process.stdout, err: process.stderr, stdin: process.stdin }): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h") {
    streams.out.write(usage());
    return 0;
  }
  if (name === "help") {
    const c = rest[0] === undefined ? undefined : findCommand(rest[0]);
    streams.out.write(c?.help ?? usage());
    return c === undefined && rest[0] !== undefined ? 2 : 0;
  }
  const cmd = findCommand(name);
  if (cmd === undefined) {
    streams.err.write(`hyperfleet: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  try {
    return await cmd.run(rest, context(streams));
  } catch (e) {
    if (!isHyperfleetError(e)) throw e;
    const usageMistake = e.details?.usage === true;
    streams.err.write(`hyperfleet ${cmd.name}: ${e.code}: ${e.message}\n`);
    if (usageMistake) streams.err.write(`${cmd.help.split("\n")[0]}\nSee 'hyperfleet ${cmd.name} --help'.\n`);
    return cmd.errorStatus ?? (usageMistake ? 2 : 1);
  }
}
