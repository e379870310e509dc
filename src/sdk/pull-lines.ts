/**
 * Reads the NDJSON answer of `POST /images/pull`: progress lines to a callback, then the image, or
 * the error line as a HyperfleetApiError. Lines are bounded (a server cannot fill our memory).
 */
import type { ImageJson, PullProgressJson } from "../contract/images.js";
import { HyperfleetApiError, errorFromBody } from "./errors.js";

/** An image answer is a few KiB; anything near this is not one. */
const MAX_LINE_BYTES = 1024 * 1024;

function invalid(why: string): HyperfleetApiError {
  return new HyperfleetApiError("API_RESPONSE_INVALID", `the pull stream ${why}`, { status: 200, requestId: null });
}

/** Consumes `chunks`; resolves with the image of the last line. */
export async function readPullLines(chunks: AsyncIterable<Buffer>, onProgress: (p: PullProgressJson) => void): Promise<ImageJson> {
  let buf = "";
  const handle = (line: string): ImageJson | null => {
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      throw invalid(`has a line that is not JSON: ${line.slice(0, 200)}`);
    }
    const o = v as Record<string, unknown>;
    if (o.image !== undefined) return o.image as ImageJson;
    if (o.error !== undefined) throw errorFromBody(200, null, line);
    if (typeof o.phase === "string") onProgress(o as unknown as PullProgressJson);
    return null;
  };
  for await (const c of chunks) {
    buf += c.toString("utf8");
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.trim() === "") continue;
      const img = handle(line);
      if (img) return img;
    }
    if (buf.length > MAX_LINE_BYTES) throw invalid(`has a line longer than ${MAX_LINE_BYTES} bytes`);
  }
  if (buf.trim() !== "") {
    const img = handle(buf);
    if (img) return img;
  }
  throw invalid("ended without the image or an error");
}
