/**
 * A small ustar codec for directory transfer as tar (pure, no I/O): header blocks for files,
 * directories and symlinks (PAX records for names or targets that do not fit ustar), and an
 * incremental reader of ustar, PAX and GNU long-name archives. Only what the file API needs: no
 * sparse files, no device nodes on write.
 */
import { HyperfleetError } from "../core/errors.js";

export const BLOCK = 512;

export type TarType = "file" | "directory" | "symlink" | "hardlink" | "other";

export interface TarHeader {
  /** Relative path inside the archive, `/`-separated (a directory's without a trailing slash). */
  name: string;
  type: TarType;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: Date;
  /** Symlink or hardlink target. */
  linkname?: string;
}

const TYPEFLAG: Record<Exclude<TarType, "hardlink" | "other">, string> = { file: "0", directory: "5", symlink: "2" };

function octal(v: number, width: number): string {
  return v.toString(8).padStart(width - 1, "0") + "\0";
}

function fits(s: string, n: number): boolean {
  return Buffer.byteLength(s) <= n && /^[\x20-\x7e]*$/.test(s);
}

function rawHeader(h: { name: string; typeflag: string; mode: number; uid: number; gid: number; size: number; mtimeS: number; linkname: string }): Buffer {
  const b = Buffer.alloc(BLOCK);
  b.write(h.name.slice(0, 100), 0, 100, "utf8");
  b.write(octal(h.mode & 0o7777, 8), 100, "ascii");
  b.write(octal(h.uid & 0o7777777, 8), 108, "ascii");
  b.write(octal(h.gid & 0o7777777, 8), 116, "ascii");
  b.write(octal(h.size, 12), 124, "ascii");
  b.write(octal(Math.max(0, h.mtimeS), 12), 136, "ascii");
  b.write("        ", 148, "ascii");
  b.write(h.typeflag, 156, "ascii");
  b.write(h.linkname.slice(0, 100), 157, 100, "utf8");
  b.write("ustar\u000000", 257, "ascii");
  let sum = 0;
  for (const x of b) sum += x;
  b.write(octal(sum, 7) + " ", 148, "ascii");
  return b;
}

/** One PAX record: `<len> <key>=<value>\n`, where len counts itself. */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len) len = String(len).length + Buffer.byteLength(body);
  return `${len}${body}`;
}

/** Pads a body of `size` bytes to the block boundary. */
export function padding(size: number): Buffer {
  return Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);
}

/** The header block(s) of one entry: a PAX header first when the name or target does not fit ustar. */
export function encodeHeader(h: TarHeader): Buffer {
  if (h.type === "hardlink" || h.type === "other") throw new HyperfleetError("INTERNAL", `tar: cannot write a ${h.type} entry`);
  const name = h.type === "directory" ? `${h.name}/` : h.name;
  const linkname = h.linkname ?? "";
  const records = (fits(name, 100) ? "" : paxRecord("path", name)) + (fits(linkname, 100) ? "" : paxRecord("linkpath", linkname));
  const main = rawHeader({ name, typeflag: TYPEFLAG[h.type], mode: h.mode, uid: h.uid, gid: h.gid, size: h.type === "file" ? h.size : 0, mtimeS: Math.floor(h.mtime.getTime() / 1000), linkname });
  if (!records) return main;
  const pax = Buffer.from(records, "utf8");
  const paxHead = rawHeader({ name: "PaxHeader", typeflag: "x", mode: 0o644, uid: 0, gid: 0, size: pax.length, mtimeS: 0, linkname: "" });
  return Buffer.concat([paxHead, pax, padding(pax.length), main]);
}

/** The end of an archive: two zero blocks. */
export const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK);

function bad(msg: string): HyperfleetError {
  return new HyperfleetError("INVALID_ARGUMENT", `the body is not a valid tar archive: ${msg}`, { details: { field: "body" } });
}

function cstr(b: Buffer, off: number, len: number): string {
  const s = b.subarray(off, off + len);
  const nul = s.indexOf(0);
  return s.subarray(0, nul < 0 ? len : nul).toString("utf8");
}

function num(b: Buffer, off: number, len: number, what: string): number {
  const f = b.subarray(off, off + len);
  // GNU base-256 for large values: first byte 0x80.
  if (f[0]! & 0x80) {
    let v = 0;
    for (let i = 1; i < len; i++) v = v * 256 + f[i]!;
    if (!Number.isSafeInteger(v)) throw bad(`${what} is too large`);
    return v;
  }
  const s = cstr(b, off, len).trim();
  if (s === "") return 0;
  if (!/^[0-7]+$/.test(s)) throw bad(`${what} is not an octal number`);
  return parseInt(s, 8);
}

function checksumOk(b: Buffer): boolean {
  const want = num(b, 148, 8, "checksum");
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : b[i]!;
  return sum === want;
}

function parsePax(body: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let off = 0;
  while (off < body.length) {
    const sp = body.indexOf(0x20, off);
    const len = Number(body.toString("ascii", off, sp));
    if (sp < 0 || !Number.isInteger(len) || len <= 0 || off + len > body.length) throw bad("a malformed PAX record");
    const rec = body.toString("utf8", sp + 1, off + len - 1);
    const eq = rec.indexOf("=");
    if (eq > 0) out.set(rec.slice(0, eq), rec.slice(eq + 1));
    off += len;
  }
  return out;
}

const MAX_META = 1024 * 1024;

/** Reads exact byte counts from an async source of chunks. */
class ByteReader {
  private buf: Buffer = Buffer.alloc(0);
  private done = false;
  constructor(private readonly it: AsyncIterator<Buffer>) {}

  private async fill(n: number): Promise<boolean> {
    while (this.buf.length < n && !this.done) {
      const r = await this.it.next();
      if (r.done) this.done = true;
      else this.buf = this.buf.length ? Buffer.concat([this.buf, r.value]) : r.value;
    }
    return this.buf.length >= n;
  }

  /** Exactly n bytes, or null at a clean end of input (nothing buffered). */
  async exact(n: number): Promise<Buffer | null> {
    if (!(await this.fill(n))) {
      if (this.buf.length === 0) return null;
      throw bad("it ends in the middle of an entry");
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  /** n bytes as they arrive, in chunks no larger than the source's. */
  async *chunks(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (!this.buf.length && !(await this.fill(1))) throw bad("it ends in the middle of an entry");
      const take = Math.min(left, this.buf.length);
      const out = this.buf.subarray(0, take);
      this.buf = this.buf.subarray(take);
      left -= take;
      yield out;
    }
  }

  async skip(n: number): Promise<void> {
    for await (const _ of this.chunks(n)) void _;
  }
}

export interface TarEntry {
  header: TarHeader;
  /** The entry's bytes (files only; empty otherwise). Must be consumed or skipped before the next entry. */
  body: AsyncIterable<Buffer>;
}

/**
 * The entries of a tar archive, as they arrive. Each entry's body must be read (or abandoned, which
 * skips it) before the next is yielded; memory stays at one chunk plus PAX/GNU metadata (at most 1 MiB).
 */
export async function* readTar(source: AsyncIterable<Buffer>): AsyncGenerator<TarEntry> {
  const r = new ByteReader(source[Symbol.asyncIterator]());
  let pax = new Map<string, string>();
  let longName: string | undefined;
  let longLink: string | undefined;
  for (;;) {
    const block = await r.exact(BLOCK);
    if (!block) throw bad("it has no end-of-archive blocks");
    if (block.every((x) => x === 0)) return;
    if (!checksumOk(block)) throw bad("a header checksum does not match");
    const flag = String.fromCharCode(block[156]!);
    const size = num(block, 124, 12, "size");
    const pad = (BLOCK - (size % BLOCK)) % BLOCK;
    if (flag === "x" || flag === "g" || flag === "L" || flag === "K") {
      if (size > MAX_META) throw bad(`a ${size}-byte metadata entry`);
      const body = (await r.exact(size + pad)) ?? Buffer.alloc(0);
      const data = body.subarray(0, size);
      if (flag === "x") pax = parsePax(data);
      else if (flag === "L") longName = cstr(data, 0, data.length);
      else if (flag === "K") longLink = cstr(data, 0, data.length);
      continue;
    }
    const magic = block.toString("ascii", 257, 262);
    const prefix = magic === "ustar" ? cstr(block, 345, 155) : "";
    const base = cstr(block, 0, 100);
    let name = pax.get("path") ?? longName ?? (prefix ? `${prefix}/${base}` : base);
    const type: TarType = flag === "0" || flag === "\0" || flag === "7" ? "file" : flag === "5" ? "directory" : flag === "2" ? "symlink" : flag === "1" ? "hardlink" : "other";
    if (type === "directory" || name.endsWith("/")) name = name.replace(/\/+$/, "");
    const header: TarHeader = {
      name,
      type: type === "file" && base.endsWith("/") ? "directory" : type,
      mode: num(block, 100, 8, "mode"),
      uid: num(block, 108, 8, "uid"),
      gid: num(block, 116, 8, "gid"),
      size: pax.has("size") ? Number(pax.get("size")) : size,
      mtime: new Date(num(block, 136, 12, "mtime") * 1000),
    };
    const link = pax.get("linkpath") ?? longLink ?? cstr(block, 157, 100);
    if (type === "symlink" || type === "hardlink") header.linkname = link;
    pax = new Map();
    longName = longLink = undefined;
    // Links and directories carry no data whatever their size field says; other types skip theirs.
    const bodySize = type === "file" ? header.size : type === "other" ? size : 0;
    let taken = 0;
    async function* fileBody(): AsyncGenerator<Buffer> {
      for await (const c of r.chunks(bodySize)) {
        taken += c.length;
        yield c;
      }
    }
    yield { header, body: type === "file" ? fileBody() : (async function* () {})() };
    // Whatever the consumer left of the body, and its padding, are skipped.
    await r.skip(bodySize - taken + ((BLOCK - (bodySize % BLOCK)) % BLOCK));
  }
}
