/**
 * The little of the DNS wire format (RFC 1035) the test DNS server needs: parse one question, build
 * an answer with A records or NXDOMAIN. Pure, so it is checked without a socket.
 */

export const TYPE_A = 1;
const CLASS_IN = 1;
/** Classic DNS over UDP: a query larger than this is not one our guests send. */
export const MAX_QUERY_BYTES = 512;

export interface Question {
  id: number;
  name: string;
  type: number;
  /** The question section as received (name, type, class), echoed in the answer. */
  raw: Buffer;
}

/** Parses a standard query with exactly one question; null for anything else. */
export function parseQuery(msg: Buffer): Question | null {
  if (msg.length < 12 || msg.length > MAX_QUERY_BYTES) return null;
  const flags = msg.readUInt16BE(2);
  if (flags & 0x8000 || ((flags >> 11) & 0xf) !== 0) return null; // a response, or not QUERY
  if (msg.readUInt16BE(4) !== 1) return null;
  const labels: string[] = [];
  let off = 12;
  for (;;) {
    const len = msg[off];
    if (len === undefined || len > 63) return null; // truncated, or a compression pointer
    off += 1;
    if (len === 0) break;
    if (off + len > msg.length) return null;
    labels.push(msg.subarray(off, off + len).toString("latin1").toLowerCase());
    off += len;
  }
  if (off + 4 > msg.length) return null;
  return { id: msg.readUInt16BE(0), name: labels.join("."), type: msg.readUInt16BE(off), raw: msg.subarray(12, off + 4) };
}

/**
 * The answer to `q`: `addr` as an A record when the name is known and an A was asked; no answer
 * (NOERROR) for other types of a known name; NXDOMAIN for unknown names.
 */
export function buildAnswer(q: Question, addr: string | undefined): Buffer {
  const rcode = addr === undefined ? 3 : 0;
  const answers = addr !== undefined && q.type === TYPE_A ? 1 : 0;
  const head = Buffer.alloc(12);
  head.writeUInt16BE(q.id, 0);
  head.writeUInt16BE(0x8180 | 0x0400 | rcode, 2); // QR, AA, RD, RA
  head.writeUInt16BE(1, 4);
  head.writeUInt16BE(answers, 6);
  if (!answers) return Buffer.concat([head, q.raw]);
  const rr = Buffer.alloc(16);
  rr.writeUInt16BE(0xc00c, 0); // pointer to the question's name
  rr.writeUInt16BE(TYPE_A, 2);
  rr.writeUInt16BE(CLASS_IN, 4);
  rr.writeUInt32BE(60, 6);
  rr.writeUInt16BE(4, 10);
  addr!.split(".").forEach((o, i) => rr.writeUInt8(Number(o), 12 + i));
  return Buffer.concat([head, q.raw, rr]);
}

/** A query for `name` (type A), as a resolver would send it; for tests of the server. */
export function buildQuery(id: number, name: string, type = TYPE_A): Buffer {
  const labels = name.split(".").map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, "latin1")]));
  const head = Buffer.alloc(12);
  head.writeUInt16BE(id, 0);
  head.writeUInt16BE(0x0100, 2); // RD
  head.writeUInt16BE(1, 4);
  const tail = Buffer.alloc(5);
  tail.writeUInt16BE(type, 1);
  tail.writeUInt16BE(CLASS_IN, 3);
  return Buffer.concat([head, ...labels, tail]);
}
