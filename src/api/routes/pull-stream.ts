/**
 * The NDJSON answer of `POST /images/pull` (Accept: application/x-ndjson): progress lines while
 * the pull runs, then one `{"image": ...}` or `{"error": {code, message}}` line. The head (200) is
 * sent with the first progress line, so a pull that fails before any progress (a bad reference)
 * still gets its 4xx; after that the last line is the outcome.
 *
 * Bounded: a phase change is sent at once (there are a handful per pull); counts within a phase at
 * most once per THROTTLE_MS (the newest win), and nothing while the socket's buffer is full. A
 * client going away only stops the writes: the pull is shared and goes on.
 */
import type { OutgoingHttpHeaders, ServerResponse } from "node:http";
import type { PullProgressView } from "../../core/ports/services.js";

export const NDJSON = "application/x-ndjson";
export const THROTTLE_MS = 100;

/** Wire form of one progress line. */
export function progressLine(p: PullProgressView): string {
  return `${JSON.stringify({ phase: p.phase, layers_done: p.layersDone, layers_total: p.layersTotal, bytes_done: p.bytesDone, bytes_total: p.bytesTotal })}\n`;
}

/** True when the client asked for the stream (an Accept header naming application/x-ndjson). */
export function wantsNdjson(accept: string | string[] | undefined): boolean {
  const v = Array.isArray(accept) ? accept.join(",") : (accept ?? "");
  return v.split(",").some((t) => t.split(";")[0]?.trim().toLowerCase() === NDJSON);
}

/** A throttled writer (`base`: headers every answer carries, as x-request-id, which a hijacked reply does not add) of progress lines onto `res`; end() writes the last line (or, before any line, answers `status`) and closes. */
export function pullStream(res: ServerResponse, base: OutgoingHttpHeaders = {}): { progress(p: PullProgressView): void; end(last: object, status?: number): void } {
  let pending: PullProgressView | null = null;
  let lastSent = "";
  let lastPhase = "";
  const open = () => !res.destroyed && !res.writableEnded;
  const flush = () => {
    if (!pending || !open() || res.writableNeedDrain) return;
    const line = progressLine(pending);
    lastPhase = pending.phase;
    pending = null;
    if (line === lastSent) return;
    lastSent = line;
    if (!res.headersSent) res.writeHead(200, { ...base, "content-type": NDJSON, "cache-control": "no-store", "x-content-type-options": "nosniff" });
    res.write(line);
  };
  const timer = setInterval(flush, THROTTLE_MS);
  timer.unref();
  return {
    progress(p) {
      pending = { ...p };
      if (p.phase !== lastPhase) flush();
    },
    end(last, status = 200) {
      clearInterval(timer);
      flush();
      if (!open()) return;
      if (!res.headersSent) res.writeHead(status, { ...base, "content-type": status === 200 ? NDJSON : "application/json; charset=utf-8" });
      res.end(`${JSON.stringify(last)}\n`);
    },
  };
}
