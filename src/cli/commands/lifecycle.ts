/** start, stop, restart, wait: one action per machine, then (by default) a wait for its outcome. */
import { MACHINE_STATUSES, isMachineStatus, type MachineStatus } from "../../core/machine-state.js";
import type { MachineJson } from "../../sdk/index.js";
import { parse, secondsOption, str, usageError } from "../args.js";
import { showHelp, type Command } from "../command.js";
import type { Ctx } from "../context.js";
import { json } from "../output.js";

const DEFAULT_TIMEOUT_S = 120;

function action(name: "start" | "stop" | "restart", target: MachineStatus, what: string): Command {
  const cmd: Command = {
    name,
    summary: what,
    help: `usage: hyperfleet ${name} [--no-wait] [--timeout SECONDS] [--json] ID|NAME...

${what[0]!.toUpperCase()}${what.slice(1)}, then wait until it is ${target} (at most --timeout, default ${DEFAULT_TIMEOUT_S} s).

      --no-wait          return once the request is accepted
      --timeout SECONDS  how long to wait for '${target}'
      --json             print the machines (JSON array) instead of their names
`,
    async run(args, ctx) {
      const p = parse(args, { "no-wait": { type: "boolean" }, timeout: { type: "string" }, json: { type: "boolean" } });
      if (p.help) return showHelp(cmd, ctx);
      if (p.positionals.length === 0) throw usageError(`${name} needs at least one machine id or name`);
      const timeoutS = secondsOption("timeout", str(p.values.timeout)) ?? DEFAULT_TIMEOUT_S;
      const hf = ctx.client();
      const done: MachineJson[] = [];
      for (const ref of p.positionals) {
        const m = (await hf.machines.find(ref)).unwrap();
        let after = (await hf.machines[name](m.id)).unwrap();
        if (p.values["no-wait"] !== true) after = (await hf.machines.wait(m.id, { status: target, timeoutMs: timeoutS * 1000 })).unwrap();
        done.push(after);
        if (p.values.json !== true) ctx.out.write(`${ref}\n`);
      }
      if (p.values.json === true) json(ctx.out, done);
      return 0;
    },
  };
  return cmd;
}

export const start = action("start", "running", "start machines");
export const stop = action("stop", "stopped", "stop machines (the guest powers off cleanly)");
export const restart = action("restart", "running", "restart machines");

export const wait: Command = {
  name: "wait",
  summary: "wait until machines reach a status",
  help: `usage: hyperfleet wait [--status STATUS] [--timeout SECONDS] [--json] ID|NAME...

Block until each machine is in STATUS (default running), then print it. Fails with WAIT_TIMEOUT
after --timeout (default ${DEFAULT_TIMEOUT_S} s) and with MACHINE_FAILED when waiting for running and the machine failed.

      --status STATUS    ${MACHINE_STATUSES.join("|")}
      --timeout SECONDS
      --json             print the machines (JSON array)
`,
  async run(args, ctx: Ctx) {
    const p = parse(args, { status: { type: "string" }, timeout: { type: "string" }, json: { type: "boolean" } });
    if (p.help) return showHelp(wait, ctx);
    if (p.positionals.length === 0) throw usageError("wait needs at least one machine id or name");
    const status = str(p.values.status) ?? "running";
    if (!isMachineStatus(status)) throw usageError(`--status ${status}: expected one of ${MACHINE_STATUSES.join(", ")}`);
    const timeoutS = secondsOption("timeout", str(p.values.timeout)) ?? DEFAULT_TIMEOUT_S;
    const hf = ctx.client();
    const done: MachineJson[] = [];
    for (const ref of p.positionals) {
      const m = (await hf.machines.find(ref)).unwrap();
      const w = (await hf.machines.wait(m.id, { status, timeoutMs: timeoutS * 1000 })).unwrap();
      done.push(w);
      if (p.values.json !== true) ctx.out.write(`${ref} ${w.status}\n`);
    }
    if (p.values.json === true) json(ctx.out, done);
    return 0;
  },
};
