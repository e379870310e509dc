/**
 * Parsers for apt-cache output (pure), used to pick the exact kernel package to download.
 */

/** Parses the first deb822 stanza of `apt-cache show` output into field -> value (continuation lines joined). */
export function parseStanza(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  let last: string | undefined;
  for (const line of text.split("\n")) {
    if (line.trim() === "") {
      if (last !== undefined) break; // end of the first stanza
      continue;
    }
    if (/^\s/.test(line) && last !== undefined) {
      fields[last] += `\n${line.trim()}`;
      continue;
    }
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    last = line.slice(0, colon);
    fields[last] = line.slice(colon + 1).trim();
  }
  return fields;
}

/** Versions of `pkg` that `apt-cache madison` says are downloadable ("pkg | ver | source"). */
export function parseMadison(text: string, pkg: string): string[] {
  const versions: string[] = [];
  for (const line of text.split("\n")) {
    const cols = line.split("|").map((c) => c.trim());
    if (cols.length >= 3 && cols[0] === pkg && cols[1]) versions.push(cols[1]);
  }
  return versions;
}

/** A concrete package with an exact version. */
export interface PackageRef {
  name: string;
  version: string;
}

/**
 * Finds the concrete kernel package in a meta package's Depends field.
 *
 * @example findKernelDependency("linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)")
 *   // -> { name: "linux-image-6.1.0-56-cloud-amd64", version: "6.1.192-2" }
 */
export function findKernelDependency(depends: string, prefix = "linux-image-"): { name: string; version?: string } | null {
  for (const clause of depends.split(",")) {
    for (const alt of clause.split("|")) {
      const m = /^\s*(\S+)\s*(?:\(\s*=\s*([^)\s]+)\s*\))?/.exec(alt);
      if (m?.[1]?.startsWith(prefix)) return m[2] === undefined ? { name: m[1] } : { name: m[1], version: m[2] };
    }
  }
  return null;
}
