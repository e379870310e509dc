/**
 * Bearer-key authentication. Keys are compared as sha256 digests with crypto.timingSafeEqual, and
 * every known key is compared on each request, so neither the key's content nor which key matched
 * shows in the response time. Digests have a fixed length, which timingSafeEqual needs anyway.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { HyperfleetError } from "../core/errors.js";
import { errorBody } from "./errors.js";
import { httpStatus } from "./http-status.js";

/** Hex sha256 of a key: what the store keeps. */
export function hashApiKey(key: string): string {
  return createHash("sha256").update(key, "utf8").digest("hex");
}

/** A fresh random key, `hf_` + 43 base64url characters (256 bits). */
export function generateApiKey(): string {
  return `hf_${randomBytes(32).toString("base64url")}`;
}

export class ApiKeyVerifier {
  private readonly digests: Buffer[];

  /** @param hexDigests sha256 digests (hex) of the accepted keys */
  constructor(hexDigests: readonly string[]) {
    this.digests = hexDigests.map((h) => Buffer.from(h, "hex"));
  }

  get size(): number {
    return this.digests.length;
  }

  verify(key: string): boolean {
    const presented = createHash("sha256").update(key, "utf8").digest();
    let match = false;
    for (const d of this.digests) match = timingSafeEqual(presented, d) || match;
    return match;
  }
}

/**
 * A browser cannot set Authorization on a WebSocket: it may offer the key as a subprotocol
 * `bearer.<key>` instead (beside `hyperfleet.v1`, which the server selects; the key is never echoed).
 */
function subprotocolKey(req: FastifyRequest): string | undefined {
  if (String(req.headers.upgrade).toLowerCase() !== "websocket") return undefined;
  const offered = req.headers["sec-websocket-protocol"];
  if (typeof offered !== "string") return undefined;
  for (const p of offered.split(",")) {
    const t = p.trim();
    if (t.startsWith("bearer.")) return t.slice("bearer.".length);
  }
  return undefined;
}

/** Paths that answer without a key: liveness and the API description. */
export function isPublicPath(url: string): boolean {
  const path = url.split("?")[0] ?? "";
  return path === "/health" || path === "/openapi.json" || path === "/docs" || path.startsWith("/docs/");
}

/**
 * Registers the onRequest hook. It runs before body parsing, so a request without a valid key is
 * refused before its body is read or validated.
 */
export function registerAuth(app: FastifyInstance, verifier: ApiKeyVerifier | null): void {
  if (verifier === null) return;
  app.addHook("onRequest", (req: FastifyRequest, reply: FastifyReply, done: () => void) => {
    if (isPublicPath(req.url)) return done();
    const header = req.headers.authorization;
    const m = typeof header === "string" ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (m?.[1] !== undefined && verifier.verify(m[1])) return done();
    const wsKey = header === undefined ? subprotocolKey(req) : undefined;
    if (wsKey !== undefined && verifier.verify(wsKey)) return done();
    const why = header === undefined ? "missing Authorization header" : "invalid API key";
    const e = new HyperfleetError("UNAUTHENTICATED", `${why}: send 'Authorization: Bearer <key>'`);
    void reply.code(httpStatus(e.code)).header("www-authenticate", 'Bearer realm="hyperfleet"').send(errorBody(e));
  });
}
