import { parse, usageError } from "../args.js";
import { showHelp, type Command } from "../command.js";
import type { Ctx } from "../context.js";
import { ago, json, table } from "../output.js";
import { memoryMib } from "./run.js";

const HELP = `usage: hyperfleet volume create [--size SIZE] NAME
       hyperfleet volume ls [-q] [--json]
       hyperfleet volume rm NAME|ID...

Named persistent disks (docs/agents.md "Volumes"). A machine names one at create
('hyperfleet run -v NAME:/MOUNT[:ro]') and holds it until it is deleted; the data stays for the
next machine. One machine at a time: another one naming it is refused (VOLUME_IN_USE).

  create   a new volume; --size like --memory of 'run' (default 1g): formatted ext4 on first use
  ls       the volumes and the machine that holds each (-q: names only)
  rm       delete volumes and their data (refused while a machine holds one)
`;

export const volume: Command = {
  name: "volume",
  summary: "create, list and remove volumes",
  help: HELP,
  async run(args, ctx) {
    const [sub, ...rest] = args;
    if (sub === undefined || sub === "--help" || sub === "-h") return showHelp(volume, ctx);
    if (sub === "create") return create(rest, ctx);
    if (sub === "ls" || sub === "list") return list(rest, ctx);
    if (sub === "rm" || sub === "remove") return remove(rest, ctx);
    throw usageError(`unknown volume command '${sub}': create, ls or rm`);
  },
};

async function create(args: string[], ctx: Ctx): Promise<number> {
  const p = parse(args, { size: { type: "string", short: "s" } });
  if (p.help) return showHelp(volume, ctx);
  if (p.positionals.length !== 1) throw usageError("volume create needs exactly one NAME");
  const sizeMib = p.values.size === undefined ? 1024 : memoryMib(String(p.values.size));
  const v = (await ctx.client().volumes.create({ name: p.positionals[0]!, size_mib: sizeMib })).unwrap();
  ctx.out.write(`${v.name}\n`);
  return 0;
}

async function list(args: string[], ctx: Ctx): Promise<number> {
  const p = parse(args, { quiet: { type: "boolean", short: "q" }, json: { type: "boolean" } });
  if (p.help) return showHelp(volume, ctx);
  if (p.positionals.length > 0) throw usageError(`unexpected argument '${p.positionals[0]}'`);
  const vols = (await ctx.client().volumes.list()).unwrap();
  if (p.values.json === true) json(ctx.out, vols);
  else if (p.values.quiet === true) ctx.out.write(vols.map((v) => `${v.name}\n`).join(""));
  else table(ctx.out, ["NAME", "ID", "SIZE", "MACHINE", "CREATED"], vols.map((v) => [v.name, v.id, `${v.size_mib} MiB`, v.machine_id ?? "-", ago(v.created_at)]));
  return 0;
}

async function remove(args: string[], ctx: Ctx): Promise<number> {
  const p = parse(args, {});
  if (p.help) return showHelp(volume, ctx);
  if (p.positionals.length === 0) throw usageError("volume rm needs at least one volume name or id");
  const hf = ctx.client();
  for (const ref of p.positionals) {
    (await hf.volumes.delete(ref)).unwrap();
    ctx.out.write(`${ref}\n`);
  }
  return 0;
}
