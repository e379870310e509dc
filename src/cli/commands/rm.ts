import { HyperfleetError } from "../../core/errors.js";
import { parse, usageError } from "../args.js";
import { showHelp, type Command } from "../command.js";

/** Statuses a machine can be removed in without -f: nothing runs and nothing is saved. */
const AT_REST = new Set(["created", "stopped", "failed"]);

export const rm: Command = {
  name: "rm",
  summary: "delete machines",
  help: `usage: hyperfleet rm [-f] ID|NAME...

Delete machines and their disks. A machine that runs (or is starting, paused, suspended) is refused
unless -f is given; -f kills its VM first.

  -f, --force   delete whatever the machine's status
`,
  async run(args, ctx) {
    const p = parse(args, { force: { type: "boolean", short: "f" } });
    if (p.help) return showHelp(rm, ctx);
    if (p.positionals.length === 0) throw usageError("rm needs at least one machine id or name");
    const hf = ctx.client();
    for (const ref of p.positionals) {
      const m = (await hf.machines.find(ref)).unwrap();
      if (p.values.force !== true && !AT_REST.has(m.status)) {
        throw new HyperfleetError("INVALID_STATE_TRANSITION", `machine ${ref} is ${m.status}: stop it first, or use rm -f to kill and delete it`, {
          details: { current_status: m.status },
        });
      }
      (await hf.machines.delete(m.id)).unwrap();
      ctx.out.write(`${ref}\n`);
    }
    return 0;
  },
};
