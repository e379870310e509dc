import { parse, strs, usageError } from "../args.js";
import { showHelp, type Command } from "../command.js";
import { json } from "../output.js";
import { secretPairs } from "../secret-args.js";

export const secrets: Command = {
  name: "secrets",
  summary: "replace or list a machine's secrets",
  help: `usage: hyperfleet secrets set ID|NAME [--secret-file NAME=PATH]... [NAME=VALUE | NAME]...
       hyperfleet secrets ls ID|NAME [--json]

set: replace all of the machine's secrets with these (names left out are removed). A running
machine's /run/secrets files change at once; its main process sees the new values in its
environment at its next start. NAME alone takes the value from this shell's environment and
--secret-file from a file: both keep the value off the host's process list, which NAME=VALUE
does not.
ls: the machine's secret names (values are never shown).
`,
  async run(args, ctx) {
    const p = parse(args, { "secret-file": { type: "string", multiple: true }, json: { type: "boolean" } });
    if (p.help) return showHelp(secrets, ctx);
    const [verb, ref, ...items] = p.positionals;
    if ((verb !== "set" && verb !== "ls") || ref === undefined) throw usageError("expected 'secrets set ID|NAME ...' or 'secrets ls ID|NAME'");
    const hf = ctx.client();
    const m = (await hf.machines.find(ref)).unwrap();
    if (verb === "ls") {
      if (items.length > 0) throw usageError("secrets ls takes one machine");
      if (p.values.json === true) json(ctx.out, m.secret_names);
      else for (const name of m.secret_names) ctx.out.write(`${name}\n`);
      return 0;
    }
    const given = secretPairs({ inline: items, files: strs(p.values["secret-file"]) }) ?? {};
    const updated = (await hf.machines.setSecrets(m.id, given)).unwrap();
    ctx.out.write(`${updated.secret_names.join(" ")}\n`);
    return 0;
  },
};
