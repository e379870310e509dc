import { MACHINE_STATUSES, isMachineStatus, type MachineStatus } from "../../core/machine-state.js";
import { parse, strs, usageError } from "../args.js";
import { showHelp, type Command } from "../command.js";
import { ago, json, table } from "../output.js";

export const ps: Command = {
  name: "ps",
  aliases: ["ls"],
  summary: "list machines",
  help: `usage: hyperfleet ps [-a] [--filter status=STATUS]... [-q] [--json]

List running machines (all of them with -a).

  -a, --all              every status, not only running
  -f, --filter KEY=VAL   status=${MACHINE_STATUSES.join("|")} (repeat or comma-separate for several)
  -q, --quiet            ids only
      --json             the machines as the API returns them (a JSON array)
`,
  async run(args, ctx) {
    const p = parse(args, { all: { type: "boolean", short: "a" }, filter: { type: "string", short: "f", multiple: true }, quiet: { type: "boolean", short: "q" }, json: { type: "boolean" } });
    if (p.help) return showHelp(ps, ctx);
    if (p.positionals.length > 0) throw usageError(`unexpected argument '${p.positionals[0]}'`);
    const statuses: MachineStatus[] = [];
    for (const f of strs(p.values.filter)) {
      const [k, v] = [f.slice(0, f.indexOf("=")), f.slice(f.indexOf("=") + 1)];
      if (k !== "status") throw usageError(`--filter ${f}: only status=... is supported`);
      for (const s of v.split(",")) {
        if (!isMachineStatus(s)) throw usageError(`--filter ${f}: '${s}' is not a status (${MACHINE_STATUSES.join(", ")})`);
        statuses.push(s);
      }
    }
    const status = statuses.length > 0 ? statuses : p.values.all === true ? undefined : (["running"] as MachineStatus[]);
    const list = (await ctx.client().machines.list(status === undefined ? {} : { status })).unwrap();
    if (p.values.json === true) json(ctx.out, list);
    else if (p.values.quiet === true) ctx.out.write(list.map((m) => `${m.id}\n`).join(""));
    else {
      table(
        ctx.out,
        ["ID", "NAME", "STATUS", "IMAGE", "CPUS", "MEMORY", "IP", "PORTS", "CREATED"],
        list.map((m) => [
          m.id,
          m.name,
          // Docker's "running (healthy)".
          m.health.status === "none" ? m.status : `${m.status} (${m.health.status})`,
          m.image_ref ?? "-",
          String(m.vcpu_count),
          `${m.mem_size_mib} MiB`,
          m.network?.ip ?? "-",
          m.exposed_ports.map((e) => `${e.host_ip}:${e.host_port}->${e.guest_port}/${e.protocol}`).join(",") || "-",
          ago(m.created_at),
        ]),
      );
    }
    return 0;
  },
};
