/**
 * Typed readers for environment variables that collect every problem instead of stopping at the
 * first, so a misconfigured daemon reports all bad variables in one CONFIG_INVALID error.
 */
import { isAbsolute, resolve } from "node:path";

export type Env = Readonly<Record<string, string | undefined>>;

export interface ConfigProblem {
  variable: string;
  message: string;
}

export class EnvReader {
  readonly problems: ConfigProblem[] = [];

  constructor(private readonly env: Env) {}

  /** The raw value; empty or whitespace-only counts as unset. */
  raw(name: string): string | undefined {
    const v = this.env[name];
    return v === undefined || v.trim() === "" ? undefined : v.trim();
  }

  problem(variable: string, message: string): void {
    this.problems.push({ variable, message });
  }

  string(name: string, fallback: string): string {
    return this.raw(name) ?? fallback;
  }

  /** An integer in [min, max]; `unit` only makes the message readable. */
  int(name: string, fallback: number, min: number, max: number, unit = ""): number {
    const v = this.raw(name);
    if (v === undefined) return fallback;
    if (!/^\d+$/.test(v)) {
      this.problem(name, `must be a whole number${unit ? ` of ${unit}` : ""}, got '${v}'`);
      return fallback;
    }
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      this.problem(name, `must be between ${min} and ${max}${unit ? ` ${unit}` : ""}, got ${v}`);
      return fallback;
    }
    return n;
  }

  /** on/off style flags: on, off, true, false, 1, 0, yes, no (case-insensitive). */
  bool(name: string, fallback: boolean): boolean {
    const v = this.raw(name)?.toLowerCase();
    if (v === undefined) return fallback;
    if (["1", "true", "on", "yes"].includes(v)) return true;
    if (["0", "false", "off", "no"].includes(v)) return false;
    this.problem(name, `must be one of on, off, true, false, 1, 0, got '${v}'`);
    return fallback;
  }

  oneOf<T extends string>(name: string, fallback: T, allowed: readonly T[]): T {
    const v = this.raw(name);
    if (v === undefined) return fallback;
    if ((allowed as readonly string[]).includes(v)) return v as T;
    this.problem(name, `must be one of ${allowed.join(", ")}, got '${v}'`);
    return fallback;
  }

  /** A filesystem path; relative paths are taken from the daemon's working directory. */
  path(name: string, fallback: string): string;
  path(name: string, fallback: null): string | null;
  path(name: string, fallback: string | null): string | null {
    const v = this.raw(name);
    if (v === undefined) return fallback;
    if (v.includes("\0")) {
      this.problem(name, "must not contain a NUL byte");
      return fallback;
    }
    return isAbsolute(v) ? v : resolve(v);
  }

  /** A comma-separated list; blanks between commas are dropped. */
  list(name: string): string[] {
    const v = this.raw(name);
    if (v === undefined) return [];
    return v
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s !== "");
  }
}
