/**
 * One HTTP exchange with the daemon: the key, a timeout and the caller's AbortSignal on every
 * call, bounded reads of every answer, and each failure as a HyperfleetApiError with a stable code.
 */
import { HyperfleetApiError, errorFromBody } from "./errors.js";

export interface CallOptions {
  /** Cancels the call: it fails with OPERATION_CANCELLED (the daemon cancels its guest side too). */
  signal?: AbortSignal;
  /** Milliseconds until the call fails with API_TIMEOUT. Each method has its own default. */
  timeoutMs?: number;
}

export interface TransportOptions {
  url: string;
  apiKey: string | undefined;
  timeoutMs: number;
  maxResponseBytes: number;
  fetch: typeof fetch;
}

export interface RequestSpec extends CallOptions {
  method: "GET" | "POST" | "PUT" | "DELETE";
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  /** Sent as JSON. */
  body?: unknown;
  /** Sent as it is, streamed (never read whole): bytes or a web stream, with its content type. */
  raw?: { data: Uint8Array | ReadableStream<Uint8Array>; contentType: string };
  accept?: string;
  /** Larger answers fail with API_RESPONSE_INVALID. Default: the client's maxResponseBytes. */
  maxBytes?: number;
}

/** Error bodies are small; a larger one is cut (its message stays readable). */
const ERROR_BODY_MAX = 64 * 1024;

export interface Answer {
  status: number;
  body: Buffer;
}

/** An answer whose body is still to be read, with the deadline cleared. */
export interface OpenAnswer {
  status: number;
  chunks: AsyncIterableIterator<Buffer>;
}

class Call {
  readonly ac = new AbortController();
  private timer: NodeJS.Timeout | null = null;
  private timedOut = false;
  private readonly onAbort = () => this.ac.abort();

  constructor(
    readonly what: string,
    readonly spec: RequestSpec,
    readonly timeoutMs: number,
  ) {
    if (timeoutMs > 0) {
      this.timer = setTimeout(() => {
        this.timedOut = true;
        this.ac.abort();
      }, timeoutMs);
    }
    spec.signal?.addEventListener("abort", this.onAbort, { once: true });
  }

  clearDeadline(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  end(): void {
    this.clearDeadline();
    this.spec.signal?.removeEventListener("abort", this.onAbort);
  }

  /** What a throw from fetch or from reading the body means for the caller. */
  failure(e: unknown, status: number | null = null): HyperfleetApiError {
    if (e instanceof HyperfleetApiError) return e;
    if (this.timedOut) {
      return new HyperfleetApiError("API_TIMEOUT", `${this.what}: no answer within ${this.timeoutMs} ms; the operation may still complete on the server`, { status, cause: e });
    }
    if (this.spec.signal?.aborted) return new HyperfleetApiError("OPERATION_CANCELLED", `${this.what}: cancelled by the caller`, { status, cause: e });
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    const why = cause?.code ?? cause?.message ?? (e instanceof Error ? e.message : String(e));
    return new HyperfleetApiError("API_UNREACHABLE", `${this.what}: the server did not answer (${why}); is the daemon running at HYPERFLEET_URL?`, { status, cause: e });
  }
}

export class Transport {
  constructor(readonly opts: TransportOptions) {}

  /** The whole answer of a 2xx call, read up to its bound; a non-2xx one throws its error. */
  async request(spec: RequestSpec): Promise<Answer> {
    const call = this.start(spec);
    try {
      const res = await this.send(call);
      const body = await readBounded(res, spec.maxBytes ?? this.opts.maxResponseBytes, call);
      return { status: res.status, body };
    } catch (e) {
      throw call.failure(e);
    } finally {
      call.end();
    }
  }

  /** A JSON answer, parsed. */
  async json<T>(spec: RequestSpec): Promise<T> {
    const a = await this.request({ ...spec, accept: "application/json" });
    try {
      return JSON.parse(a.body.toString("utf8")) as T;
    } catch (e) {
      throw new HyperfleetApiError("API_RESPONSE_INVALID", `${spec.method} ${spec.path}: the answer is not JSON`, { status: a.status, cause: e });
    }
  }

  /**
   * An answer to read as it comes (followed logs): the timeout covers only the wait for its
   * headers; the caller's signal, or leaving the iteration early, ends it.
   */
  async open(spec: RequestSpec): Promise<OpenAnswer> {
    const call = this.start(spec);
    let res: Response;
    try {
      res = await this.send(call);
    } catch (e) {
      call.end();
      throw call.failure(e);
    }
    call.clearDeadline();
    const body = res.body;
    let leaving = false;
    async function* chunks(): AsyncGenerator<Buffer> {
      try {
        if (body === null) return;
        for await (const c of body) yield Buffer.from(c as Uint8Array);
      } catch (e) {
        // The caller left: how the stream's end went is nobody's concern.
        if (leaving) return;
        throw call.failure(e, res.status);
      } finally {
        call.ac.abort();
        call.end();
      }
    }
    const it = chunks();
    // Leaving early (break, return()) closes the connection even before the first chunk was asked
    // for: a generator that never started would not run its finally.
    const close = it.return.bind(it);
    it.return = async (v?: unknown) => {
      leaving = true;
      try {
        return await close(v as undefined);
      } finally {
        call.ac.abort();
        call.end();
      }
    };
    return { status: res.status, chunks: it };
  }

  private start(spec: RequestSpec): Call {
    const call = new Call(`${spec.method} ${spec.path}`, spec, spec.timeoutMs ?? this.opts.timeoutMs);
    if (spec.signal?.aborted) call.ac.abort();
    return call;
  }

  private async send(call: Call): Promise<Response> {
    const { spec } = call;
    if (spec.signal?.aborted) throw call.failure(new Error("aborted before it was sent"));
    const headers: Record<string, string> = { accept: spec.accept ?? "application/json" };
    if (this.opts.apiKey !== undefined) headers.authorization = `Bearer ${this.opts.apiKey}`;
    let body: string | Uint8Array | ReadableStream<Uint8Array> | undefined;
    if (spec.raw !== undefined) {
      headers["content-type"] = spec.raw.contentType;
      body = spec.raw.data;
    } else if (spec.body !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(spec.body);
    }
    // A stream body needs half duplex (undici); the answer comes after the whole body was sent.
    const init = { method: spec.method, headers, ...(body !== undefined && { body }), ...(body instanceof ReadableStream && { duplex: "half" }), signal: call.ac.signal };
    const res = await this.opts.fetch(this.url(spec), init as RequestInit);
    if (res.status >= 200 && res.status < 300) return res;
    const text = (await readBounded(res, ERROR_BODY_MAX, call, true)).toString("utf8");
    throw errorFromBody(res.status, res.headers.get("x-request-id"), text);
  }

  private url(spec: RequestSpec): string {
    const u = new URL(spec.path.replace(/^\//, ""), this.opts.url.endsWith("/") ? this.opts.url : `${this.opts.url}/`);
    for (const [k, v] of Object.entries(spec.query ?? {})) if (v !== undefined) u.searchParams.set(k, String(v));
    return u.toString();
  }
}

/** The body, refusing (or, for error bodies, cutting) more than `max` bytes: a server cannot fill our memory. */
async function readBounded(res: Response, max: number, call: Call, cut = false): Promise<Buffer> {
  const parts: Buffer[] = [];
  let size = 0;
  if (res.body === null) return Buffer.alloc(0);
  for await (const c of res.body) {
    const b = Buffer.from(c as Uint8Array);
    if (size + b.length > max) {
      call.ac.abort();
      if (cut) {
        parts.push(b.subarray(0, max - size));
        break;
      }
      throw new HyperfleetApiError("API_RESPONSE_INVALID", `${call.what}: the answer is larger than ${max} bytes (raise maxResponseBytes, or maxBytes for a download)`, {
        status: res.status,
      });
    }
    parts.push(b);
    size += b.length;
  }
  return Buffer.concat(parts);
}
