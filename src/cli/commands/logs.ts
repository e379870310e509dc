import { intOption, parse, str, usageError } from "../args.js";
import { showHelp, type Command } from "../command.js";

export const logs: Command = {
  name: "logs",
  summary: "show a machine's main process output",
  help: `usage: hyperfleet logs [-f] [--tail N] ID|NAME

Print the output (stdout and stderr, interleaved) of the machine's main process: its image's
command, or the CMD given to 'run -d'. The machine must be running.

  -f, --follow   keep printing new output until the process exits or the machine stops (Ctrl-C to leave)
  -n, --tail N   start with the last N lines
`,
  async run(args, ctx) {
    const p = parse(args, { follow: { type: "boolean", short: "f" }, tail: { type: "string", short: "n" } });
    if (p.help) return showHelp(logs, ctx);
    if (p.positionals.length !== 1) throw usageError("logs needs exactly one machine id or name");
    const tail = intOption("tail", str(p.values.tail), 0, 1_000_000);
    const hf = ctx.client();
    const m = (await hf.machines.find(p.positionals[0]!)).unwrap();
    const opts = tail === undefined ? {} : { tail };
    if (p.values.follow !== true) {
      ctx.out.write((await hf.machines.logs(m.id, opts)).unwrap());
      return 0;
    }
    for await (const chunk of (await hf.machines.followLogs(m.id, opts)).unwrap()) {
      // Backpressure: a slow terminal or pipe slows the reads, never fills our memory.
      if (!ctx.out.write(chunk)) await new Promise((r) => ctx.out.once("drain", r));
    }
    return 0;
  },
};
