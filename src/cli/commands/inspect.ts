import { parse, usageError } from "../args.js";
import { showHelp, type Command } from "../command.js";
import { json } from "../output.js";

export const inspect: Command = {
  name: "inspect",
  summary: "show machines in full (JSON)",
  help: `usage: hyperfleet inspect ID|NAME...

Print the machines as the API returns them, as a JSON array (one entry per argument).
`,
  async run(args, ctx) {
    const p = parse(args, { json: { type: "boolean" } });
    if (p.help) return showHelp(inspect, ctx);
    if (p.positionals.length === 0) throw usageError("inspect needs at least one machine id or name");
    const all = [];
    for (const ref of p.positionals) all.push((await ctx.client().machines.find(ref)).unwrap());
    json(ctx.out, all);
    return 0;
  },
};
