import { parse, usageError } from "../args.js";
import { showHelp, type Command } from "../command.js";
import { json, table } from "../output.js";

export const events: Command = {
  name: "events",
  summary: "show a machine's restart and health events",
  help: `usage: hyperfleet events [--json] ID|NAME

Print what the machine's restart policy and health check did, oldest first (the last 200 are
kept): each restart (why, which attempt, after what backoff), each restart not made (the
limit), and each change of its health status.

      --json   the events as the API returns them (a JSON array)
`,
  async run(args, ctx) {
    const p = parse(args, { json: { type: "boolean" } });
    if (p.help) return showHelp(events, ctx);
    if (p.positionals.length !== 1) throw usageError("events needs exactly one machine id or name");
    const hf = ctx.client();
    const m = (await hf.machines.find(p.positionals[0]!)).unwrap();
    const list = (await hf.machines.events(m.id)).unwrap();
    if (p.values.json === true) json(ctx.out, list);
    else table(ctx.out, ["TIME", "EVENT", "MESSAGE"], list.map((e) => [e.at, e.kind === "health" ? `health: ${e.health ?? "?"}` : e.kind, e.message]));
    return 0;
  },
};
