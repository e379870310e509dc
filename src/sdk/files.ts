/**
 * Files in a running machine: stat, delete, list, mkdir, rename; uploads and downloads whole (in
 * memory) or streamed (bounded memory, any size the daemon allows), single files or trees as tar.
 */
import { Readable } from "node:stream";
import type { ListResponse, TarUploadResponse } from "../contract/file-tree.js";
import type { StatResponse, UploadResponse } from "../contract/files.js";
import { attempt, type Result } from "../core/result.js";
import { machinePath } from "./paths.js";
import type { CallOptions, Transport } from "./transport.js";

/** The daemon's own ceiling (HYPERFLEET_FILE_MAX_SIZE is at most 1 GiB); a download is held in memory. */
const DEFAULT_DOWNLOAD_MAX = 256 * 1024 * 1024;
/** Uploads travel as base64 JSON: 4/3 of the file, so give them time. */
const TRANSFER_TIMEOUT_MS = 300_000;
/** A streamed upload's whole body must be sent within this (the daemon's HYPERFLEET_BODY_TIMEOUT applies too). */
const STREAM_UPLOAD_TIMEOUT_MS = 3_600_000;

/** What a streamed upload reads from: a node Readable, a web ReadableStream, or any async iterable of bytes. */
export type UploadSource = Readable | ReadableStream<Uint8Array> | AsyncIterable<Uint8Array> | Uint8Array;

function webBody(src: UploadSource): Uint8Array | ReadableStream<Uint8Array> {
  if (src instanceof Uint8Array || src instanceof ReadableStream) return src;
  const r = src instanceof Readable ? src : Readable.from(src, { objectMode: false });
  return Readable.toWeb(r) as ReadableStream<Uint8Array>;
}

export class Files {
  constructor(private readonly t: Transport) {}

  /** Writes `data` to `path` (parents created), on the guest's disk when it resolves. `mode`: 0o644 by default. */
  upload(id: string, path: string, data: Uint8Array | string, opts: { mode?: number } & CallOptions = {}): Promise<Result<UploadResponse>> {
    const { mode, ...o } = opts;
    const content = (typeof data === "string" ? Buffer.from(data) : Buffer.from(data.buffer, data.byteOffset, data.byteLength)).toString("base64");
    return attempt(() =>
      this.t.json<UploadResponse>({ timeoutMs: TRANSFER_TIMEOUT_MS, ...o, method: "POST", path: machinePath(id, "/files"), body: { path, content, ...(mode !== undefined && { mode }) } }),
    );
  }

  /** The file's bytes (raw, no base64); more than `maxBytes` (default 256 MiB) is API_RESPONSE_INVALID. */
  download(id: string, path: string, opts: { maxBytes?: number } & CallOptions = {}): Promise<Result<Buffer>> {
    const { maxBytes, ...o } = opts;
    return attempt(async () => {
      const a = await this.t.request({
        timeoutMs: TRANSFER_TIMEOUT_MS,
        ...o,
        method: "GET",
        path: machinePath(id, "/files"),
        query: { path },
        accept: "application/octet-stream",
        maxBytes: maxBytes ?? DEFAULT_DOWNLOAD_MAX,
      });
      return a.body;
    });
  }

  stat(id: string, path: string, o: CallOptions = {}): Promise<Result<StatResponse>> {
    return attempt(() => this.t.json<StatResponse>({ ...o, method: "GET", path: machinePath(id, "/files/stat"), query: { path } }));
  }

  /** A directory needs `recursive`; `/` is refused by the daemon. */
  remove(id: string, path: string, opts: { recursive?: boolean } & CallOptions = {}): Promise<Result<void>> {
    const { recursive, ...o } = opts;
    return attempt(async () => {
      await this.t.request({ ...o, method: "DELETE", path: machinePath(id, "/files"), query: { path, ...(recursive === true && { recursive: true }) } });
    });
  }

  /** A directory's entries, sorted by name; `truncated` when there were more than `limit` (default 10000). */
  list(id: string, path: string, opts: { limit?: number } & CallOptions = {}): Promise<Result<ListResponse>> {
    const { limit, ...o } = opts;
    return attempt(() => this.t.json<ListResponse>({ ...o, method: "GET", path: machinePath(id, "/files/list"), query: { path, limit } }));
  }

  /** `parents` (default true) is mkdir -p; `mode` a number or an octal string. */
  mkdir(id: string, path: string, opts: { mode?: number | string; parents?: boolean } & CallOptions = {}): Promise<Result<void>> {
    const { mode, parents, ...o } = opts;
    return attempt(async () => {
      await this.t.request({ ...o, method: "POST", path: machinePath(id, "/files/mkdir"), body: { path, ...(mode !== undefined && { mode }), ...(parents !== undefined && { parents }) } });
    });
  }

  /** rename(2) in the guest; an existing `to` is 409 FILE_ALREADY_EXISTS unless `overwrite`. */
  rename(id: string, from: string, to: string, opts: { overwrite?: boolean } & CallOptions = {}): Promise<Result<void>> {
    const { overwrite, ...o } = opts;
    return attempt(async () => {
      await this.t.request({ ...o, method: "POST", path: machinePath(id, "/files/rename"), body: { from, to, ...(overwrite !== undefined && { overwrite }) } });
    });
  }

  /**
   * The file as a node Readable, read from the daemon only as fast as it is consumed (bounded
   * memory at both ends). `timeoutMs` covers the wait for the answer's headers; destroying the
   * stream cancels the read in the guest.
   */
  downloadStream(id: string, path: string, o: CallOptions = {}): Promise<Result<Readable>> {
    return this.openStream(id, { path }, "application/octet-stream", o);
  }

  /** A file or directory tree as a tar stream (entries named from the path's last component). */
  downloadTar(id: string, path: string, o: CallOptions = {}): Promise<Result<Readable>> {
    return this.openStream(id, { path, format: "tar" }, "application/x-tar", o);
  }

  /** Streams `source` to `path` as it is read (temp file + rename in the guest). `mode`: 0o644 by default. */
  uploadStream(id: string, path: string, source: UploadSource, opts: { mode?: number } & CallOptions = {}): Promise<Result<UploadResponse>> {
    const { mode, ...o } = opts;
    const query = { path, ...(mode !== undefined && { mode: mode.toString(8).padStart(4, "0") }) };
    return attempt(() =>
      this.t.json<UploadResponse>({
        timeoutMs: STREAM_UPLOAD_TIMEOUT_MS,
        ...o,
        method: "PUT",
        path: machinePath(id, "/files"),
        query,
        raw: { data: webBody(source), contentType: "application/octet-stream" },
      }),
    );
  }

  /** Unpacks the tar archive `source` into the directory `path` (created if missing). */
  uploadTar(id: string, path: string, source: UploadSource, o: CallOptions = {}): Promise<Result<TarUploadResponse>> {
    return attempt(() =>
      this.t.json<TarUploadResponse>({
        timeoutMs: STREAM_UPLOAD_TIMEOUT_MS,
        ...o,
        method: "PUT",
        path: machinePath(id, "/files"),
        query: { path, format: "tar" },
        raw: { data: webBody(source), contentType: "application/x-tar" },
      }),
    );
  }

  private openStream(id: string, query: Record<string, string>, accept: string, o: CallOptions): Promise<Result<Readable>> {
    return attempt(async () => {
      const a = await this.t.open({ ...o, method: "GET", path: machinePath(id, "/files"), query, accept });
      // Readable.from pulls one chunk at a time: the HTTP body is read only as the consumer reads.
      const r = Readable.from(a.chunks, { objectMode: false, highWaterMark: 64 * 1024 });
      r.once("close", () => void a.chunks.return?.(undefined));
      return r;
    });
  }
}
