/**
 * HTTP/1.1 client of Firecracker's API socket. Every request is first checked against Firecracker's
 * own API definition (spec.ts): no Firecracker runs on our build machines, so a request the spec
 * refuses is a bug of ours and is never sent (INTERNAL). Answers are bounded (a VMM gone wrong
 * cannot fill our memory) and so is each request's time. A refusal (`{"fault_message": ...}`)
 * becomes a HyperfleetError whose code the caller chooses (a refused boot step is VMM_SPAWN_FAILED,
 * a refused snapshot SNAPSHOT_FAILED) and whose message names the request and Firecracker's words.
 */
import { request } from "node:http";
import { fileURLToPath } from "node:url";
import { HyperfleetError, type ErrorCode } from "../../core/errors.js";
import type { FcRequest } from "./config.js";
import { FirecrackerContract } from "./spec.js";

/** Largest answer body we read; Firecracker's biggest (GET /vm/config) is a few KiB. */
export const MAX_RESPONSE_BYTES = 64 * 1024;
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;

export const SPEC_PATH = fileURLToPath(new URL("../../../specs/firecracker/firecracker.yaml", import.meta.url));

let shared: FirecrackerContract | null = null;
/** The vendored v1.16.1 definition, compiled once per process (ajv compiles every operation). */
export function defaultContract(): FirecrackerContract {
  shared ??= new FirecrackerContract(SPEC_PATH);
  return shared;
}

export interface FcAnswer {
  status: number;
  /** Parsed JSON body, or null when there was none (204). */
  body: unknown;
}

export interface FcSendOptions {
  /** The code a refusal or a missing answer gets. Default VMM_CONTROL_FAILED. */
  code?: ErrorCode;
  timeoutMs?: number;
  signal?: AbortSignal;
}

export const describeRequest = (r: FcRequest) => `${r.method} ${r.path}`;

export class FirecrackerApi {
  constructor(
    readonly socketPath: string,
    private readonly contract: FirecrackerContract = defaultContract(),
    private readonly defaultTimeoutMs = DEFAULT_REQUEST_TIMEOUT_MS,
  ) {}

  /** Sends one request; resolves with a 2xx answer, rejects with a coded error otherwise. */
  async send(req: FcRequest, opts: FcSendOptions = {}): Promise<FcAnswer> {
    const invalid = this.contract.validateRequest(req.method, req.path, req.body);
    if (invalid) {
      throw new HyperfleetError("INTERNAL", `refusing to send ${describeRequest(req)}: it breaks the Firecracker ${this.contract.version} API (${invalid.code}: ${invalid.message})`, {
        details: { request: describeRequest(req), contract: invalid.code },
      });
    }
    const code = opts.code ?? "VMM_CONTROL_FAILED";
    const answer = await this.exchange(req, opts.timeoutMs ?? this.defaultTimeoutMs, opts.signal).catch((e: unknown) => {
      throw new HyperfleetError(code, `Firecracker API ${describeRequest(req)} on ${this.socketPath}: ${(e as Error).message}`, { cause: e, details: { request: describeRequest(req) } });
    });
    if (answer.status >= 200 && answer.status < 300) return answer;
    const fault = faultMessage(answer.body);
    throw new HyperfleetError(code, `Firecracker refused ${describeRequest(req)} (HTTP ${answer.status}): ${fault ?? JSON.stringify(answer.body)}`, {
      details: { request: describeRequest(req), status: answer.status, ...(fault !== null ? { faultMessage: fault } : {}) },
    });
  }

  /** Sends the requests in order; the first refusal ends the sequence. */
  async sendAll(reqs: readonly FcRequest[], opts: FcSendOptions = {}): Promise<void> {
    for (const r of reqs) await this.send(r, opts);
  }

  private exchange(req: FcRequest, timeoutMs: number, signal?: AbortSignal): Promise<FcAnswer> {
    return new Promise((resolve, reject) => {
      const payload = req.body === undefined ? undefined : Buffer.from(JSON.stringify(req.body));
      const headers: Record<string, string | number> = { Accept: "application/json" };
      if (payload) Object.assign(headers, { "Content-Type": "application/json", "Content-Length": payload.length });
      // A fresh connection per request (agent: false): nothing pooled outlives the VMM or the handle.
      const r = request({ socketPath: this.socketPath, method: req.method, path: req.path, headers, agent: false, timeout: timeoutMs, signal });
      const timer = setTimeout(() => r.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      const fail = (e: Error) => {
        clearTimeout(timer);
        reject(e);
      };
      r.on("error", fail);
      r.on("timeout", () => r.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      r.on("response", (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (c: Buffer) => {
          size += c.length;
          if (size > MAX_RESPONSE_BYTES) {
            // After the response began, the request emits no error of its own: reject here.
            fail(new Error(`answer larger than ${MAX_RESPONSE_BYTES} bytes`));
            res.destroy();
            r.destroy();
            return;
          }
          chunks.push(c);
        });
        res.on("error", fail);
      // A connection cut mid-body ends the response without 'end'.
      res.on("aborted", () => fail(new Error("connection closed before the whole answer")));
        res.on("end", () => {
          clearTimeout(timer);
          if (size > MAX_RESPONSE_BYTES) return;
          const text = Buffer.concat(chunks).toString("utf8");
          let body: unknown = null;
          if (text.trim() !== "") {
            try {
              body = JSON.parse(text);
            } catch {
              body = text.slice(0, 512);
            }
          }
          resolve({ status: res.statusCode ?? 0, body });
        });
      });
      r.end(payload);
    });
  }
}

function faultMessage(body: unknown): string | null {
  if (body !== null && typeof body === "object" && "fault_message" in body) {
    const m = (body as { fault_message: unknown }).fault_message;
    return typeof m === "string" ? m : JSON.stringify(m);
  }
  return null;
}
