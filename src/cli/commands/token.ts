import { parse, usageError } from "../args.js";
import { showHelp, type Command } from "../command.js";

export const token: Command = {
  name: "token",
  summary: "print (or rotate) a machine's access token for its private URLs",
  help: `usage: hyperfleet token [--rotate] ID|NAME

Print the access token a machine's private services need through the daemon's proxy
(run --service PORT:private). Send it as the header X-Hyperfleet-Token, the cookie hf_token, or
open https://PORT-<id>.<domain>/?hf_token=TOKEN once in a browser (it sets the cookie).

      --rotate   replace the token with a new one and print it; the old one stops working
`,
  async run(args, ctx) {
    const p = parse(args, { rotate: { type: "boolean" } });
    if (p.help) return showHelp(token, ctx);
    if (p.positionals.length !== 1) throw usageError("token needs one machine id or name");
    const hf = ctx.client();
    const m = (await hf.machines.find(p.positionals[0]!)).unwrap();
    ctx.out.write(`${(await hf.machines.token(m.id, { rotate: p.values.rotate === true })).unwrap()}\n`);
    return 0;
  },
};
