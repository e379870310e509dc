/**
 * Secrets from the command line (`run --secret`, `secrets set`): `NAME=value`; `NAME` alone takes
 * the value from this process's environment and `--secret-file NAME=PATH` from a file, which keep
 * the value off the host's process list (a command line is readable by every local user).
 */
import { readFileSync } from "node:fs";
import { usageError } from "./args.js";

/** The API's bound on one value (contract SECRET_VALUE_MAX); a bigger file is refused before it is read whole. */
const FILE_MAX = 65_536;

export interface SecretSources {
  inline: readonly string[];
  files: readonly string[];
  /** Where a bare NAME is looked up; default this process's environment. */
  env?: Readonly<Record<string, string | undefined>>;
  readFile?: (path: string) => Buffer;
}

function split(flag: string, text: string): [string, string | undefined] {
  const i = text.indexOf("=");
  const name = i < 0 ? text : text.slice(0, i);
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,127}$/.test(name)) throw usageError(`${flag} ${name}: a secret's name is letters, digits and '_', not starting with a digit`);
  return [name, i < 0 ? undefined : text.slice(i + 1)];
}

/** Name -> value; undefined when none was given. Later flags win over earlier ones of the same name. */
export function secretPairs(s: SecretSources): Record<string, string> | undefined {
  if (s.inline.length === 0 && s.files.length === 0) return undefined;
  const read = s.readFile ?? ((p: string) => readFileSync(p));
  // eslint-disable-next-line no-restricted-properties -- `--secret NAME` is Docker's `-e NAME`: the user's shell variable, not configuration
  const env = s.env ?? process.env;
  const out: Record<string, string> = {};
  for (const item of s.inline) {
    const [name, value] = split("--secret", item);
    const v = value ?? env[name];
    if (v === undefined) throw usageError(`--secret ${name}: not set in this environment (give NAME=value, or export ${name})`);
    out[name] = v;
  }
  for (const item of s.files) {
    const [name, path] = split("--secret-file", item);
    if (path === undefined || path === "") throw usageError(`--secret-file ${name}: expected NAME=PATH`);
    let data: Buffer;
    try {
      data = read(path);
    } catch (e) {
      throw usageError(`--secret-file ${name}=${path}: ${(e as Error).message}`);
    }
    if (data.length > FILE_MAX) throw usageError(`--secret-file ${name}=${path}: larger than ${FILE_MAX} bytes`);
    out[name] = data.toString("utf8");
  }
  return out;
}
