/**
 * HTTP/1.1 answers from guests, read by the proxy itself (pure; RFC 9112). Node's http client
 * cost 0.2-0.3 ms of a proxied request's latency on a warm daemon (ClientRequest, Agent,
 * IncomingMessage and their events; bench:proxy, same-run A/B), so upstream.ts speaks HTTP/1.1 to
 * the guest on a plain socket, and this reads what comes back: the head, then the body's frames.
 *
 * The guest is untrusted and its connections are pooled across clients, so the reading is strict
 * wherever a mistake would let one answer run into the next: one Content-Length value, chunk sizes
 * that are hex and bounded, Transfer-Encoding over Content-Length (and then no reuse), obs-fold
 * refused. It is lenient where that cannot happen: LF-only line ends (busybox httpd's CGI headers
 * have them; nginx takes them too). Names and values that Node would refuse to send on to the
 * client are refused here, so a guest cannot make the proxy throw or inject a header line.
 */

export type BodyFraming = { kind: "none" } | { kind: "length"; length: number } | { kind: "chunked" } | { kind: "close" };

export interface ResponseHead {
  status: number;
  /** "" when the guest's would not be a valid reason phrase to send on. */
  reason: string;
  /** name, value, name, value, ... as received (values without surrounding whitespace). */
  rawHeaders: string[];
  body: BodyFraming;
  /** The connection can carry another request once this answer's body is read. */
  reusable: boolean;
}

export type HeadRead = { kind: "head"; head: ResponseHead; used: number } | { kind: "more" } | { kind: "invalid"; reason: string };

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Field values Node will write on: HTAB, visible ASCII, obs-text. */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const STATUS_LINE = /^HTTP\/1\.([01]) (\d{3})(?: ([^\r\n]*))?$/;
const DIGITS = /^\d{1,15}$/;

/** Where the head ends (the byte after its empty line), or -1: CRLF CRLF, or LF LF leniently. */
function headEnd(buf: Buffer): number {
  const crlf = buf.indexOf("\n\r\n");
  const lf = buf.indexOf("\n\n");
  if (crlf < 0) return lf < 0 ? -1 : lf + 2;
  return lf < 0 || crlf < lf ? crlf + 3 : lf + 2;
}

/**
 * Reads an answer's head from the start of `buf`. `method` is the request's (a HEAD answer has no
 * body); `max` bounds the head. 1xx heads (other than 101) come back as heads too: the caller
 * skips them and reads again from `used`.
 */
export function readResponseHead(buf: Buffer, method: string, max: number): HeadRead {
  const end = headEnd(buf);
  if (end < 0) return buf.length >= max ? { kind: "invalid", reason: `a head over ${max} bytes` } : { kind: "more" };
  if (end > max) return { kind: "invalid", reason: `a head over ${max} bytes` };
  const lines = buf.toString("latin1", 0, end).split("\n");
  const strip = (l: string) => (l.endsWith("\r") ? l.slice(0, -1) : l);
  const m = STATUS_LINE.exec(strip(lines[0]!));
  if (!m) return { kind: "invalid", reason: "not an HTTP/1.x status line" };
  const minor = Number(m[1]);
  const status = Number(m[2]);
  if (status < 100) return { kind: "invalid", reason: `status ${status}` };
  const reason = FIELD_VALUE.test(m[3] ?? "") ? (m[3] ?? "") : "";
  const rawHeaders: string[] = [];
  const lengths = new Set<string>();
  let chunked = false;
  let transfer = false;
  let close = minor === 0;
  for (let i = 1; i < lines.length; i++) {
    const line = strip(lines[i]!);
    if (line === "") break;
    if (line[0] === " " || line[0] === "\t") return { kind: "invalid", reason: "a folded header line (obs-fold)" };
    const colon = line.indexOf(":");
    const name = colon > 0 ? line.slice(0, colon) : "";
    if (!TOKEN.test(name)) return { kind: "invalid", reason: "a header line without a valid name" };
    const value = line.slice(colon + 1).trim();
    if (!FIELD_VALUE.test(value)) return { kind: "invalid", reason: `header ${name} has a control character` };
    rawHeaders.push(name, value);
    const lower = name.toLowerCase();
    if (lower === "content-length") for (const v of value.split(",")) lengths.add(v.trim());
    else if (lower === "transfer-encoding") {
      transfer = true;
      const codings = value.split(",");
      chunked = codings[codings.length - 1]!.trim().toLowerCase() === "chunked";
    } else if (lower === "connection") {
      const tokens = value.toLowerCase().split(",").map((t) => t.trim());
      if (tokens.includes("close")) close = true;
      else if (minor === 0 && tokens.includes("keep-alive")) close = false;
    }
  }
  if (lengths.size > 1) return { kind: "invalid", reason: "Content-Length values that differ" };
  const [length] = lengths;
  if (length !== undefined && !DIGITS.test(length)) return { kind: "invalid", reason: `Content-Length ${JSON.stringify(length).slice(0, 40)}` };
  if (status === 101) return { kind: "invalid", reason: "101 Switching Protocols to a request that asked for no upgrade" };
  let body: BodyFraming;
  if (method === "HEAD" || status < 200 || status === 204 || status === 304) body = { kind: "none" };
  else if (transfer) body = chunked ? { kind: "chunked" } : { kind: "close" };
  else if (length !== undefined) body = { kind: "length", length: Number(length) };
  else body = { kind: "close" };
  // Both framings: the answer is read by Transfer-Encoding, and a connection that said both is not trusted again.
  const reusable = !close && body.kind !== "close" && !(transfer && length !== undefined);
  return { kind: "head", head: { status, reason, rawHeaders, body, reusable }, used: end };
}

export type BodyRead = { kind: "data"; data: Buffer[]; done: boolean; rest: Buffer } | { kind: "invalid"; reason: string };

/** Bounds a chunk-size line (extensions included) and the trailer section. */
const MAX_LINE = 4096;
const MAX_TRAILERS = 16_384;

/**
 * The body after the head, fed as it arrives: what to pass on (chunked framing removed), whether
 * the body is complete, and any bytes after it (which, since the proxy never pipelines, make the
 * connection unfit for reuse).
 */
export class BodyReader {
  private left: number;
  /** chunked: the size line, the data, the CRLF after it, the trailers. */
  private state: "size" | "data" | "data-end" | "trailers" | "done";
  private line = "";
  private trailerBytes = 0;

  constructor(private readonly framing: BodyFraming) {
    this.left = framing.kind === "length" ? framing.length : 0;
    this.state = framing.kind === "none" || (framing.kind === "length" && framing.length === 0) ? "done" : framing.kind === "chunked" ? "size" : "data";
  }

  get done(): boolean {
    return this.state === "done";
  }

  /** The connection ended: complete only for a close-delimited body. */
  ended(): boolean {
    if (this.framing.kind === "close") this.state = "done";
    return this.state === "done";
  }

  feed(buf: Buffer): BodyRead {
    if (this.framing.kind === "close") return { kind: "data", data: buf.length > 0 ? [buf] : [], done: false, rest: EMPTY };
    if (this.framing.kind !== "chunked") {
      if (this.state === "done") return { kind: "data", data: [], done: true, rest: buf };
      const take = Math.min(this.left, buf.length);
      this.left -= take;
      if (this.left === 0) this.state = "done";
      return { kind: "data", data: take > 0 ? [take === buf.length ? buf : buf.subarray(0, take)] : [], done: this.state === "done", rest: buf.subarray(take) };
    }
    return this.chunked(buf);
  }

  private chunked(buf: Buffer): BodyRead {
    const data: Buffer[] = [];
    let at = 0;
    while (at < buf.length && this.state !== "done") {
      if (this.state === "data") {
        const take = Math.min(this.left, buf.length - at);
        data.push(buf.subarray(at, at + take));
        at += take;
        this.left -= take;
        if (this.left === 0) this.state = "data-end";
        continue;
      }
      // A line: the chunk size, the CRLF ending a chunk's data, or a trailer.
      const nl = buf.indexOf(10, at);
      const piece = buf.toString("latin1", at, nl < 0 ? buf.length : nl);
      if (this.line.length + piece.length > MAX_LINE) return { kind: "invalid", reason: `a chunk line over ${MAX_LINE} bytes` };
      this.line += piece;
      if (nl < 0) {
        at = buf.length;
        break;
      }
      at = nl + 1;
      const line = this.line.endsWith("\r") ? this.line.slice(0, -1) : this.line;
      this.line = "";
      if (this.state === "data-end") {
        if (line !== "") return { kind: "invalid", reason: "chunk data longer than its size" };
        this.state = "size";
      } else if (this.state === "size") {
        const size = /^([0-9a-fA-F]{1,12})[ \t]*(?:;.*)?$/.exec(line);
        if (!size) return { kind: "invalid", reason: "a chunk size that is not hex" };
        this.left = parseInt(size[1]!, 16);
        this.state = this.left === 0 ? "trailers" : "data";
      } else {
        this.trailerBytes += line.length + 2;
        if (this.trailerBytes > MAX_TRAILERS) return { kind: "invalid", reason: `trailers over ${MAX_TRAILERS} bytes` };
        if (line === "") this.state = "done";
      }
    }
    return { kind: "data", data, done: this.state === "done", rest: buf.subarray(at) };
  }
}

const EMPTY = Buffer.alloc(0);
