/**
 * Argument parsing for the verbs: node:util parseArgs, `--help` on every verb, and for `run` and
 * `exec` a stop at the first positional (what follows is the guest command, its own flags included).
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { HyperfleetError } from "../core/errors.js";

export type Options = NonNullable<ParseArgsConfig["options"]>;

export interface Parsed {
  values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  positionals: string[];
  help: boolean;
}

/** A usage mistake: INVALID_ARGUMENT marked so the CLI exits 2 (or its verb's error status) and shows the usage line. */
export function usageError(message: string): HyperfleetError {
  return new HyperfleetError("INVALID_ARGUMENT", message, { details: { usage: true } });
}

const HELP: Options = { help: { type: "boolean", short: "h" } };

/**
 * Parses `args`. With `stopAtCommand: n`, options end at the positional after the first n (run's
 * IMAGE, exec's ID): it and the rest are returned as they are, for the guest.
 */
export function parse(args: readonly string[], options: Options, opts: { stopAtCommand?: number } = {}): Parsed {
  const all = { ...HELP, ...options };
  let head = [...args];
  let tail: string[] = [];
  if (opts.stopAtCommand !== undefined) {
    const cut = commandStart(args, all, opts.stopAtCommand);
    head = args.slice(0, cut);
    tail = args.slice(cut);
  }
  try {
    const r = parseArgs({ args: head, options: all, allowPositionals: true, strict: true });
    const { help, ...values } = r.values;
    return { values, positionals: [...r.positionals, ...tail], help: help === true };
  } catch (e) {
    // parseArgs' messages name the option ("Unknown option '--x'"); its codes are Node's, not ours.
    throw usageError((e as Error).message.replace(/\. To specify a positional argument starting with a '-'.*$/s, ""));
  }
}

/** Index of the positional after the first `leading` ones (the guest command), skipping options and their values. */
function commandStart(args: readonly string[], options: Options, leading: number): number {
  let seen = 0;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    // parseArgs itself treats everything after `--` as positionals.
    if (a === "--") return args.length;
    if (a.startsWith("-") && a !== "-") {
      if (takesValue(a, options)) i++;
      continue;
    }
    if (seen === leading) return i;
    seen++;
  }
  return args.length;
}

function takesValue(arg: string, options: Options): boolean {
  if (arg.includes("=")) return false;
  if (arg.startsWith("--")) return options[arg.slice(2)]?.type === "string";
  // Short flags may be grouped (-it); the last one may take the next argument.
  const def = Object.values(options).find((o) => o.short === arg.slice(-1));
  return def?.type === "string" && arg.length === 2;
}

/** `K=V` pairs (-e) into an env map. */
export function envPairs(list: readonly string[] | undefined): Record<string, string> | undefined {
  if (list === undefined || list.length === 0) return undefined;
  const env: Record<string, string> = {};
  for (const p of list) {
    const i = p.indexOf("=");
    if (i <= 0) throw usageError(`-e ${p}: expected NAME=value`);
    env[p.slice(0, i)] = p.slice(i + 1);
  }
  return env;
}

/** A whole number within [min, max] from an option's text. */
export function intOption(name: string, text: string | undefined, min: number, max: number): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text)) throw usageError(`--${name} ${text}: expected a whole number`);
  const n = Number(text);
  if (n < min || n > max) throw usageError(`--${name} ${text}: expected ${min} to ${max}`);
  return n;
}

/** Seconds (decimals allowed) from an option's text. */
export function secondsOption(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+(\.\d+)?$/.test(text)) throw usageError(`--${name} ${text}: expected seconds, e.g. 30 or 0.5`);
  return Number(text);
}

export const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
export const strs = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : []);
