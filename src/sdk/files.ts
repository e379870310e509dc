/** Files in a running machine: upload, download, stat, delete (what the API offers today). */
import type { StatResponse, UploadResponse } from "../contract/files.js";
import { attempt, type Result } from "../core/result.js";
import { machinePath } from "./machines.js";
import type { CallOptions, Transport } from "./transport.js";

/** The daemon's own ceiling (HYPERFLEET_FILE_MAX_SIZE is at most 1 GiB); a download is held in memory. */
const DEFAULT_DOWNLOAD_MAX = 256 * 1024 * 1024;
/** Uploads travel as base64 JSON: 4/3 of the file, so give them time. */
const TRANSFER_TIMEOUT_MS = 300_000;

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
}
