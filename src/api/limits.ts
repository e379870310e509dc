/**
 * Limits on request bodies, so that clients cannot exhaust the daemon: a deadline for receiving a
 * whole request (a body that never finishes is cut), and a byte budget for large bodies in flight
 * (each is held in memory, several times over while it is parsed and decoded).
 */
import { Transform, type Readable } from "node:stream";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { HyperfleetError } from "../core/errors.js";

export interface HttpLimits {
  /** ms from the first byte of a request until its body must be complete. */
  readonly bodyTimeoutMs: number;
  /** Largest POST /exec body (stdin travels in it). */
  readonly execMaxBody: number;
  /** Bytes of large bodies that may be in flight at once. */
  readonly bodyBudget: number;
}

/** Bodies below this are not counted: they are bounded by each route's limit and cheap. */
export const LARGE_BODY = 64 * 1024;

/**
 * Node's own request deadline does the cutting (it also covers headers and requests Fastify
 * never routes, e.g. a 401). It is only checked every `connectionsCheckingInterval` (30 s by
 * default), which would stretch a short deadline, so that interval follows the deadline.
 */
export function serverTimeouts(bodyTimeoutMs: number): {
  requestTimeout: number;
  http: { requestTimeout: number; headersTimeout: number; connectionsCheckingInterval: number };
} {
  return {
    requestTimeout: bodyTimeoutMs,
    http: {
      requestTimeout: bodyTimeoutMs,
      headersTimeout: Math.min(60_000, bodyTimeoutMs),
      connectionsCheckingInterval: Math.min(1_000, Math.max(50, Math.floor(bodyTimeoutMs / 4))),
    },
  };
}

/**
 * Bytes reserved by large bodies. One body is always admitted when nothing else is in flight, so a
 * single body larger than the budget (a maximum-size upload) still works, alone.
 */
export class BodyBudget {
  #inFlight = 0;
  constructor(readonly limit: number) {}

  get inFlight(): number {
    return this.#inFlight;
  }

  /** `own`: bytes the caller already holds (a chunked body growing), which do not count as others. */
  tryReserve(n: number, own = 0): boolean {
    if (this.#inFlight > own && this.#inFlight + n > this.limit) return false;
    this.#inFlight += n;
    return true;
  }

  release(n: number): void {
    this.#inFlight = Math.max(0, this.#inFlight - n);
  }
}

const RETRY_AFTER_S = 1;

function tooMany(reply: FastifyReply, budget: BodyBudget): HyperfleetError {
  void reply.header("retry-after", String(RETRY_AFTER_S));
  return new HyperfleetError(
    "TOO_MANY_REQUESTS",
    `too many large request bodies in flight (${budget.inFlight} of ${budget.limit} bytes, HYPERFLEET_BODY_BUDGET); retry in ${RETRY_AFTER_S} s`,
  );
}

/**
 * preParsing hook: reserves a large body's declared length before reading it (429 at once when the
 * budget is spent), or, for a chunked body, its bytes as they arrive. Released when the response
 * closes, since the handler holds the body until then.
 */
export function registerBodyBudget(app: FastifyInstance, budget: BodyBudget): void {
  app.addHook("preParsing", async (req: FastifyRequest, reply: FastifyReply, payload: Readable) => {
    // Streamed to the guest as it arrives (routes/file-tree.ts): never held, so not counted.
    if (req.routeOptions.config.streamingBody) return payload;
    let held = 0;
    reply.raw.once("close", () => {
      budget.release(held);
      held = 0;
    });
    const header = req.headers["content-length"];
    if (header !== undefined) {
      const declared = Number(header);
      if (!(declared >= LARGE_BODY)) return payload;
      if (!budget.tryReserve(declared)) throw tooMany(reply, budget);
      held = declared;
      return payload;
    }
    if (req.headers["transfer-encoding"] === undefined) return payload;
    let seen = 0;
    const counted = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        seen += chunk.length;
        (counted as Transform & { receivedEncodedLength: number }).receivedEncodedLength = seen;
        if (seen >= LARGE_BODY && seen > held) {
          // Reserve ahead in LARGE_BODY steps, not per chunk.
          const more = seen - held + LARGE_BODY;
          if (!budget.tryReserve(more, held)) return cb(tooMany(reply, budget));
          held += more;
        }
        cb(null, chunk);
      },
    });
    payload.on("error", (e) => counted.destroy(e));
    return payload.pipe(counted);
  });
}
