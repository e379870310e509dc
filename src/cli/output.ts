/** What the verbs print: aligned tables, JSON for scripts, sizes and ages for people. */
import type { Writable } from "node:stream";

export function table(out: Writable, headers: readonly string[], rows: readonly (readonly string[])[]): void {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join("   ")
      .trimEnd();
  out.write(`${[line(headers), ...rows.map(line)].join("\n")}\n`);
}

export function json(out: Writable, value: unknown): void {
  out.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function size(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}

/** "3 seconds ago", "2 hours ago": Docker's CREATED column. */
export function ago(iso: string | null, now = Date.now()): string {
  if (iso === null) return "-";
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  const steps: Array<[number, string]> = [[86400, "day"], [3600, "hour"], [60, "minute"], [1, "second"]];
  for (const [n, unit] of steps) {
    if (s >= n || n === 1) {
      const k = Math.floor(s / n);
      return `${k} ${unit}${k === 1 ? "" : "s"} ago`;
    }
  }
  return "-";
}
