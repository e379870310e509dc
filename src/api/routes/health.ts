/** GET /health: liveness, no key needed. */
import type { FastifyInstance } from "fastify";
import { Type } from "@sinclair/typebox";

export const HealthResponse = Type.Object({
  status: Type.Literal("ok"),
  version: Type.String(),
  uptime_s: Type.Number(),
});

export function healthRoutes(app: FastifyInstance, opts: { version: string; startedAt: number }): void {
  app.get(
    "/health",
    { schema: { tags: ["health"], summary: "Health check", security: [], response: { 200: HealthResponse } } },
    async () => ({ status: "ok" as const, version: opts.version, uptime_s: Math.round((Date.now() - opts.startedAt) / 1000) }),
  );
}
