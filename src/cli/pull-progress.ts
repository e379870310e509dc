/** Pure renderers of `hyperfleet pull` progress: a bar on a terminal, plain lines otherwise. */
import type { PullProgressJson } from "../contract/images.js";

const MiB = 1024 * 1024;
const mib = (n: number) => (n / MiB).toFixed(1);

/** Bytes per second between two samples (null until there are two). */
export function rate(prev: { t: number; bytes: number } | null, now: { t: number; bytes: number }): number | null {
  if (!prev || now.t <= prev.t) return null;
  return ((now.bytes - prev.bytes) * 1000) / (now.t - prev.t);
}

/** `downloading [#####.....] 1/2 layers 0.5/1.0 MiB 2.3 MiB/s` (without a line end). */
export function progressBar(p: PullProgressJson, bytesPerSec: number | null, width = 24): string {
  const frac = p.bytes_total > 0 ? Math.min(1, p.bytes_done / p.bytes_total) : p.phase === "done" ? 1 : 0;
  const fill = Math.round(frac * width);
  const speed = bytesPerSec !== null && bytesPerSec > 0 ? ` ${mib(bytesPerSec)} MiB/s` : "";
  return `${p.phase.padEnd(11)} [${"#".repeat(fill)}${".".repeat(width - fill)}] ${p.layers_done}/${p.layers_total} layers ${mib(p.bytes_done)}/${mib(p.bytes_total)} MiB${speed}`;
}

/** One plain line (not a terminal): `phase layers L/T bytes D/T`. */
export function progressText(p: PullProgressJson): string {
  return `${p.phase} layers ${p.layers_done}/${p.layers_total} bytes ${p.bytes_done}/${p.bytes_total}\n`;
}
