/** A CLI verb: its help text, the exit status of its errors, and what it does. */
import type { Ctx } from "./context.js";

export interface Command {
  name: string;
  aliases?: readonly string[];
  /** One line, for `hyperfleet --help`. */
  summary: string;
  /** The whole `--help` text. */
  help: string;
  /**
   * Exit status of an error: 1, or 125 for verbs whose own status is the guest command's (run,
   * exec), as Docker does, so a failing command and a failing CLI can be told apart.
   */
  errorStatus?: number;
  /** Resolves with the exit status. */
  run(args: string[], ctx: Ctx): Promise<number>;
}

/** The command's help on stdout, for `VERB --help`. */
export function showHelp(cmd: Command, ctx: Ctx): number {
  ctx.out.write(cmd.help.endsWith("\n") ? cmd.help : `${cmd.help}\n`);
  return 0;
}
