/**
 * Pure pieces of AgentClient (client.ts): bounded output collection, the fields of IDENTITY, and
 * how a guest's frames map to results and coded errors.
 */
import { HyperfleetError } from "../core/errors.js";
import { decodeFields, type FieldValue, type Fields, type Frame } from "./codec.js";
import { errnoError } from "./errno.js";
import { FLAG_END, IdentityLimits, MsgType, Tag } from "./protocol.js";
import type { GuestIdentity } from "./client-types.js";

const HOSTNAME_RE = /^[A-Za-z0-9_.-]+$/;
const I64_MAX = 2n ** 63n - 1n;

/** Thrown inside a READDIR's frame handler to stop at maxEntries: the operation is cancelled, not failed. */
export class Truncated extends HyperfleetError {
  constructor() {
    super("FILE_TOO_LARGE", "directory listing truncated");
  }
}

export function checkLimit(n: number | undefined, field: string): void {
  if (n !== undefined && !(Number.isSafeInteger(n) && n >= 0)) throw new HyperfleetError("INVALID_ARGUMENT", `${field} must be a non-negative integer, got ${n}`, { details: { field } });
}

/** The frame after which the guest has nothing more for its operation. */
export function isLastFrame(f: Frame): boolean {
  if (f.type === MsgType.ERROR || f.type === MsgType.EXIT || f.type === MsgType.OK) return true;
  return f.type === MsgType.DATA && (f.flags & FLAG_END) !== 0;
}

/** Output kept up to a limit; what goes beyond it is counted as dropped, never buffered. */
export class Collector {
  private readonly parts: Buffer[] = [];
  private size = 0;
  truncated = false;

  constructor(private readonly limit = Infinity) {}

  add(b: Buffer): void {
    const room = this.limit - this.size;
    if (b.length > room) this.truncated = true;
    if (room <= 0) return;
    const kept = b.length > room ? Buffer.from(b.subarray(0, room)) : b;
    this.parts.push(kept);
    this.size += kept.length;
  }

  buffer(): Buffer {
    return Buffer.concat(this.parts, this.size);
  }
}

/** The IDENTITY fields, checked as the guest checks them, so bad input is refused with its field named. */
export function identityFields(x: GuestIdentity): Array<[number, FieldValue]> {
  const bad = (field: string, msg: string) => new HyperfleetError("INVALID_ARGUMENT", `${field} ${msg}`, { details: { field } });
  const fields: Array<[number, FieldValue]> = [];
  if (x.entropy !== undefined) {
    if (x.entropy.length < IdentityLimits.ENTROPY_MIN || x.entropy.length > IdentityLimits.ENTROPY_MAX) {
      throw bad("entropy", `must be ${IdentityLimits.ENTROPY_MIN} to ${IdentityLimits.ENTROPY_MAX} bytes, got ${x.entropy.length}`);
    }
    fields.push([Tag.ENTROPY, x.entropy]);
  }
  if (x.timeNs !== undefined) {
    if (x.timeNs < 0n || x.timeNs > I64_MAX) throw bad("timeNs", `must be ns since the epoch (0 to 2^63-1), got ${x.timeNs}`);
    fields.push([Tag.TIME_NS, { i64: x.timeNs }]);
  }
  if (x.hostname !== undefined) {
    if (x.hostname.length > IdentityLimits.HOSTNAME_MAX || !HOSTNAME_RE.test(x.hostname)) {
      throw bad("hostname", `must be 1 to ${IdentityLimits.HOSTNAME_MAX} characters of A-Z a-z 0-9 - _ ., got ${JSON.stringify(x.hostname.slice(0, 80))}`);
    }
    fields.push([Tag.HOSTNAME, x.hostname]);
  }
  return fields;
}

export function okOnly(f: Frame): true | undefined {
  return f.type === MsgType.OK ? true : undefined;
}

export function toBuffer(v: string | Buffer): Buffer {
  return typeof v === "string" ? Buffer.from(v, "utf8") : v;
}

export function errorFromFrame(f: Frame, op: string, subject: string): HyperfleetError {
  let x: Fields;
  try {
    x = decodeFields(f.payload);
  } catch {
    return protocolError(f, op);
  }
  return errnoError(x.u32(Tag.ERRNO) ?? 0, x.str(Tag.MESSAGE) ?? "", op, subject);
}

/** An agent that predates PTY/FLOW refuses their FLAGS bits: say that, not "invalid argument". */
export function streamError(f: Frame, program: string): HyperfleetError {
  const e = errorFromFrame(f, "exec", program);
  if (/FLAGS has bits this agent does not know/.test(e.message)) {
    return new HyperfleetError("AGENT_UNSUPPORTED_VERSION", "the guest agent does not support streamed execs (PTY, flow control); rebuild the guest image", { cause: e });
  }
  return e;
}

export function protocolError(f: Frame, op: string): HyperfleetError {
  return new HyperfleetError("AGENT_PROTOCOL_ERROR", `unexpected frame type 0x${f.type.toString(16)} in ${op}`);
}
