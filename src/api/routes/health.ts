/** GET /health: liveness and the VMM in use, no key needed. */
import type { FastifyInstance } from "fastify";
import { Type } from "@sinclair/typebox";
import type { VmmKind } from "../../core/ports/vmm-driver.js";

export const HealthResponse = Type.Object({
  status: Type.Literal("ok"),
  version: Type.String(),
  uptime_s: Type.Number(),
  vmm: Type.Union(
    [
      Type.Object({
        kind: Type.Union([Type.Literal("qemu"), Type.Literal("firecracker")], { description: "The VMM new machines are created under and booted with" }),
        accel: Type.Union([Type.Literal("kvm"), Type.Literal("tcg")], { description: "kvm: hardware virtualisation; tcg: QEMU's software emulation (Firecracker is always kvm)" }),
      }),
      Type.Null(),
    ],
    { description: "The daemon's VMM; null while no driver can be made on this host (say, no guest assets for the KVM probe)" },
  ),
});

/**
 * The VMM in use. The daemon answers from its driver registry, which makes the driver once (with
 * `auto`, one probe, whose verdict is also cached on disk) and keeps it: no call boots a VM.
 */
export type VmmInfoSource = () => Promise<{ kind: VmmKind; accel: "kvm" | "tcg" } | null>;

export function healthRoutes(app: FastifyInstance, opts: { version: string; startedAt: number; vmm: VmmInfoSource }): void {
  app.get(
    "/health",
    { schema: { tags: ["health"], summary: "Health check and the VMM in use", security: [], response: { 200: HealthResponse } } },
    async () => ({ status: "ok" as const, version: opts.version, uptime_s: Math.round((Date.now() - opts.startedAt) / 1000), vmm: await opts.vmm() }),
  );
}
