/**
 * The house format every benchmark ends with: a human table first (labels padded to one column),
 * then one JSON line with every figure, for scripts that collect runs.
 */
export function printReport(title: string | null, rows: ReadonlyArray<readonly [string, string]>, figures: unknown, indent = "  "): void {
  const w = Math.max(...rows.map(([k]) => k.length));
  if (title !== null) console.log(title);
  for (const [k, v] of rows) console.log(`${indent}${k.padEnd(w)}  ${v}`);
  console.log(JSON.stringify(figures));
}
