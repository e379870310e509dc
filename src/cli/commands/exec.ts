import { envPairs, parse, secondsOption, str, strs, usageError } from "../args.js";
import { showHelp, type Command } from "../command.js";
import { noTtyYet, runInGuest, STDIN_MAX } from "../guest-command.js";

export const exec: Command = {
  name: "exec",
  summary: "run a command in a running machine",
  errorStatus: 125,
  help: `usage: hyperfleet exec [-i] [-e NAME=VALUE]... [-w DIR] [-u USER] [--timeout SECONDS] ID|NAME CMD [ARG...]

Run CMD in the machine and exit with its exit status (128+n when killed by signal n). stdout and
stderr are written as the command wrote them, once it has finished.

  -i, --interactive      pass this process's stdin to the command (text, at most ${STDIN_MAX} bytes)
  -t, --tty              not supported yet (needs streaming exec)
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
    if (p.values.tty === true) throw noTtyYet("exec -t");
    const [ref, ...command] = p.positionals;
    if (ref === undefined || command.length === 0) throw usageError("exec needs a machine id or name and a command");
    const env = envPairs(strs(p.values.env));
    const cwd = str(p.values.workdir);
    const user = str(p.values.user);
    const timeout = secondsOption("timeout", str(p.values.timeout));
    const hf = ctx.client();
    const m = (await hf.machines.find(ref)).unwrap();
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

export const shell: Command = {
  name: "shell",
  summary: "an interactive shell in a machine (not supported yet)",
  errorStatus: 125,
  help: `usage: hyperfleet shell ID|NAME

An interactive shell in the machine. Not supported yet: it needs streaming exec with a PTY.
Until then: hyperfleet exec ID sh -c '...'
`,
  async run(args, ctx) {
    const p = parse(args, {});
    if (p.help) return showHelp(shell, ctx);
    throw noTtyYet("shell");
  },
};
