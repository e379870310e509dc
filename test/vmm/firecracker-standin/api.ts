/**
 * The stand-in's API server: HTTP/1.1 on the Unix socket, one request at a time (Firecracker's
 * API thread hands each request to the VMM and waits for its answer). Every request is parsed the
 * way Firecracker parses it (route, ids, JSON, then the body against the API definition with
 * closed objects, FirecrackerContract) before the VMM (vm.ts) sees it; errors are 400
 * `{"fault_message": ...}`, successes 204 without a body or 200 with JSON.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { FirecrackerContract } from "../../../src/vmm/firecracker/spec.js";
import * as F from "./faults.js";
import { Fault } from "./faults.js";
import type { Reply, StandinVm } from "./vm.js";

/** Firecracker's default --http-api-max-payload-size. */
export const MAX_PAYLOAD = 51_200;
const ID_PATHS = new Set(["drives", "network-interfaces", "pmem"]);
const ID_FIELD: Record<string, string> = { "drives": "drive_id", "network-interfaces": "iface_id", "pmem": "id" };

export interface LogEntry {
  method: string;
  path: string;
  body: unknown;
  status: number;
  fault_message?: string;
}

export interface ApiOptions {
  contract: FirecrackerContract;
  vm: StandinVm;
  /** Every request and its answer, in order (FC_STANDIN_LOG). */
  log?: (e: LogEntry) => void;
  /** A fatal fault was answered: the process must end (Firecracker after a failed restore). */
  onFatal: () => void;
}

export function createApiServer(opts: ApiOptions): Server {
  let queue: Promise<void> = Promise.resolve();
  return createServer((req, res) => {
    readBody(req, (raw, tooLarge) => {
      queue = queue.then(() => serve(opts, req, res, raw, tooLarge));
    });
  });
}

function readBody(req: IncomingMessage, done: (raw: Buffer, tooLarge: number) => void): void {
  const parts: Buffer[] = [];
  let size = 0;
  req.on("data", (c: Buffer) => {
    size += c.length;
    // Counted, not kept, past the limit: the answer only needs the size.
    if (size <= MAX_PAYLOAD) parts.push(c);
  });
  req.on("end", () => done(Buffer.concat(parts), size > MAX_PAYLOAD ? size : 0));
  req.on("error", () => undefined);
}

async function serve(opts: ApiOptions, req: IncomingMessage, res: ServerResponse, raw: Buffer, tooLarge: number): Promise<void> {
  const method = req.method ?? "";
  const path = new URL(req.url ?? "/", "http://localhost").pathname;
  let reply: Reply | Fault;
  try {
    if (tooLarge) throw new Fault(F.payloadTooLarge(tooLarge, MAX_PAYLOAD));
    const parsed = parse(opts.contract, method, path, raw);
    reply = await opts.vm.handle(method, path, parsed as Record<string, unknown> | undefined);
  } catch (e) {
    reply = e instanceof Fault ? e : new Fault(`Internal error in the Firecracker stand-in: ${(e as Error).message}`, 500);
  }
  const status = reply.status;
  const out = reply instanceof Fault ? JSON.stringify({ fault_message: reply.message }) : reply.status === 200 ? JSON.stringify(reply.body) : "";
  opts.log?.({ method, path, body: logged(raw, tooLarge), status, ...(reply instanceof Fault ? { fault_message: reply.message } : {}) });
  res.statusCode = status;
  res.setHeader("Server", "Firecracker API");
  if (out !== "") {
    res.setHeader("Content-Type", "application/json");
    res.setHeader("Content-Length", Buffer.byteLength(out));
  }
  await new Promise<void>((r) => res.end(out === "" ? undefined : out, () => r()));
  if (tooLarge) req.socket.destroy();
  if (reply instanceof Fault && reply.fatal) opts.onFatal();
}

/** The body as the log shows it: parsed JSON when it is JSON, else the text (a test may send garbage). */
function logged(raw: Buffer, tooLarge: number): unknown {
  if (tooLarge) return { truncated_bytes: tooLarge };
  if (raw.length === 0) return undefined;
  const text = raw.toString("utf8");
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** Firecracker's parse order: route, id in the path, JSON, body schema, cross-field rules. */
export function parse(contract: FirecrackerContract, method: string, path: string, raw: Buffer): unknown {
  const seg = path.split("/").filter((s) => s !== "");
  const first = seg[0] ?? "";
  const hasBody = raw.length > 0;
  if (method === "GET" && hasBody) throw new Fault(F.GET_WITH_BODY);
  if ((method === "PUT" || method === "PATCH") && !hasBody) throw new Fault(F.emptyRequest(method));
  const route = contract.validateRequest(method, path, undefined);
  if (route && (route.code === "unknown_path" || route.code === "method_not_allowed")) {
    // An id-bearing resource without its id is Firecracker's EmptyID, not an unknown path.
    if (ID_PATHS.has(first) && seg.length === 1) throw new Fault(F.EMPTY_ID);
    throw new Fault(F.invalidPathMethod(method, first));
  }
  if (ID_PATHS.has(first) && !/^[\p{L}\p{N}_]+$/u.test(seg[1] ?? "")) throw new Fault(F.INVALID_ID);
  if (!hasBody) return undefined;
  let body: unknown;
  try {
    body = JSON.parse(raw.toString("utf8"));
  } catch (e) {
    throw new Fault(F.deserialize((e as Error).message));
  }
  const bad = contract.validateRequest(method, path, body);
  if (bad) throw new Fault(bad.code === "body_not_allowed" ? F.GET_WITH_BODY : F.deserialize(bad.message));
  const b = body as Record<string, unknown>;
  if (path === "/snapshot/load") {
    const n = Number(b.mem_backend !== undefined) + Number(b.mem_file_path !== undefined);
    if (n === 0) throw new Fault(F.deserialize(F.MEM_MISSING));
    if (n === 2) throw new Fault(F.deserialize(F.MEM_TOO_MANY));
  }
  if (ID_PATHS.has(first) && b[ID_FIELD[first]!] !== seg[1]) throw new Fault(F.ID_MISMATCH);
  return body;
}
