import { envPairs, parse, secondsOption, str, strs, usageError } from "../args.js";
import { showHelp, type Command } from "../command.js";
import type { Ctx } from "../context.js";
import { runExecSession } from "../exec-session.js";
import { runInGuest, STDIN_MAX } from "../guest-command.js";

export const exec: Command = {
  name: "exec",
  summary: "run a command in a running machine",
  errorStatus: 125,
  help: `usage: hyperfleet exec [-i] [-e NAME=VALUE]... [-w DIR] [-u USER] [--timeout SECONDS] ID|NAME CMD [ARG...]

Run CMD in the machine and exit with its exit status (128+n when killed by signal n). Without -t,
stdout and stderr are written as the command wrote them, once it has finished; with -t, streamed.

  -i, --interactive      pass this process's stdin to the command (without -t: at most ${STDIN_MAX} bytes;
                         with -t: streamed, no limit)
  -t, --tty              run on a terminal (PTY) sized and resized like this one, streamed;
                         this terminal goes raw, so Ctrl-C and Ctrl-D reach the command
  -e, --env NAME=VALUE   set an environment variable (repeatable)
  -w, --workdir DIR      working directory (absolute)
  -u, --user USER        name, uid or uid:gid
      --timeout SECONDS  kill the command after this long (default 60)

Exit status: the command's; 124 when --timeout killed it, 126 not executable, 127 not found,
125 when hyperfleet itself failed (the message names the error code).
`,
  async run(args, ctx) {
    const p = parse(
      args,
      {
        interactive: { type: "boolean", short: "i" },
        tty: { type: "boolean", short: "t" },
        env: { type: "string", short: "e", multiple: true },
        workdir: { type: "string", short: "w" },
        user: { type: "string", short: "u" },
        timeout: { type: "string" },
      },
      { stopAtCommand: 1 },
    );
    if (p.help) return showHelp(exec, ctx);
    const [ref, ...command] = p.positionals;
    if (ref === undefined || command.length === 0) throw usageError("exec needs a machine id or name and a command");
    const env = envPairs(strs(p.values.env));
    const cwd = str(p.values.workdir);
    const user = str(p.values.user);
    const timeout = secondsOption("timeout", str(p.values.timeout));
    const hf = ctx.client();
    const m = (await hf.machines.find(ref)).unwrap();
    if (p.values.tty === true) {
      return interactive(ctx, m.id, command, p.values.interactive === true, { ...(env !== undefined && { env }), ...(cwd !== undefined && { cwd }), ...(user !== undefined && { user }) });
    }
    return runInGuest(hf, m.id, {
      command,
      stdin: p.values.interactive === true,
      ...(env !== undefined && { env }),
      ...(cwd !== undefined && { cwd }),
      ...(user !== undefined && { user }),
      ...(timeout !== undefined && { timeout }),
    }, ctx);
  },
};

/** A streamed session on a terminal (exec -t, run -it, shell): the exit status of its command. */
export function interactive(ctx: Ctx, id: string, command: string[], stdin: boolean, extra: { env?: Record<string, string>; cwd?: string; user?: string } = {}): Promise<number> {
  return runExecSession({
    client: ctx.client(),
    machineId: id,
    command,
    tty: true,
    interactive: stdin,
    input: ctx.stdin as unknown as Parameters<typeof runExecSession>[0]["input"],
    output: ctx.out as unknown as Parameters<typeof runExecSession>[0]["output"],
    errors: ctx.err,
    ...extra,
  });
}

export const shell: Command = {
  name: "shell",
  summary: "an interactive shell in a machine",
  errorStatus: 125,
  help: `usage: hyperfleet shell ID|NAME [CMD [ARG...]]

An interactive shell (/bin/sh, or CMD) in the machine on a terminal sized and resized like this
one. This terminal goes raw: Ctrl-C interrupts the guest's foreground process, Ctrl-D at an empty
prompt ends the shell. Exits with the shell's status (128+n when killed by signal n).
`,
  async run(args, ctx) {
    const p = parse(args, {}, { stopAtCommand: 1 });
    if (p.help) return showHelp(shell, ctx);
    const [ref, ...command] = p.positionals;
    if (ref === undefined) throw usageError("shell needs a machine id or name");
    const m = (await ctx.client().machines.find(ref)).unwrap();
    return interactive(ctx, m.id, command.length > 0 ? command : ["/bin/sh"], true);
  },
};
