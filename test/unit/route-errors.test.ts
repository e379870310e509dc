/**
 * Every route's documented error responses are the statuses of the codes it declares, through the
 * one code -> status table; and the error handler notices a route answering with a code it did
 * not declare (the API tests fail on that, see test/api/helpers.ts).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import Fastify from "fastify";
import { pino } from "pino";
import { buildApp } from "../../src/api/app.js";
import { ApiKeyVerifier } from "../../src/api/auth.js";
import { handleError, UNDECLARED_CODE } from "../../src/api/errors.js";
import { httpStatus } from "../../src/api/http-status.js";
import { documentedCodes, routeErrors } from "../../src/api/route-errors.js";
import { HyperfleetError, isErrorCode, type ErrorCode } from "../../src/core/errors.js";
import type { ImageServicePort, MachineServicePort, SnapshotServicePort } from "../../src/core/ports/services.js";

interface Operation {
  responses: Record<string, { description?: string }>;
}

/** The OpenAPI document of the real app. The ports are never called: only routes are registered. */
async function openapi(): Promise<Record<string, Record<string, Operation>>> {
  const app = await buildApp({
    service: {} as MachineServicePort,
    images: {} as ImageServicePort,
    snapshots: {} as SnapshotServicePort,
    logger: pino({ level: "silent" }),
    auth: new ApiKeyVerifier([]),
    fileMaxSize: 1024,
    limits: { bodyBudget: 1 << 20, bodyTimeoutMs: 1000, execMaxBody: 1 << 20 },
    execOutputMax: 1024,
    version: "test",
    vmm: () => Promise.resolve(null),
  });
  try {
    const r = await app.inject({ method: "GET", url: "/openapi.json" });
    return (JSON.parse(r.body) as { paths: Record<string, Record<string, Operation>> }).paths;
  } finally {
    await app.close();
  }
}

test("each route documents exactly the statuses of the codes it declares, each code under its own status", async () => {
  const paths = await openapi();
  let operations = 0;
  for (const [path, methods] of Object.entries(paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const where = `${method.toUpperCase()} ${path}`;
      if (path === "/health") {
        assert.deepEqual(Object.keys(op.responses), ["200"], `${where}: no error responses`);
        continue;
      }
      operations++;
      const codes: ErrorCode[] = [];
      for (const [status, res] of Object.entries(op.responses)) {
        if (Number(status) < 400) continue;
        const listed = documentedCodes(res.description ?? "");
        assert.ok(listed.length > 0, `${where} ${status}: names no error codes ("${res.description}")`);
        for (const code of listed) {
          assert.ok(isErrorCode(code), `${where} ${status}: ${code} is not an error code`);
          assert.equal(httpStatus(code), Number(status), `${where}: ${code} is documented as ${status} but sent as ${httpStatus(code)}`);
          codes.push(code);
        }
      }
      for (const code of ["UNAUTHENTICATED", "INVALID_ARGUMENT", "INTERNAL"] as const) assert.ok(codes.includes(code), `${where}: ${code} not documented`);
    }
  }
  assert.ok(operations >= 15, `only ${operations} operations documented`);
});

test("the statuses that drifted before: image pulls 502, image removal 404 IMAGE_NOT_CACHED, wait 408", async () => {
  const paths = await openapi();
  const codesAt = (path: string, method: string, status: number) => documentedCodes(paths[path]?.[method]?.responses[String(status)]?.description ?? "");
  assert.deepEqual(codesAt("/images/pull", "post", 502).sort(), ["IMAGE_PULL_FAILED", "IMAGE_REGISTRY_UNREACHABLE"]);
  assert.ok(codesAt("/images/pull", "post", 404).includes("IMAGE_NOT_FOUND"));
  assert.ok(codesAt("/images/{ref}", "delete", 404).includes("IMAGE_NOT_CACHED"));
  assert.ok(!codesAt("/images/{ref}", "delete", 404).includes("IMAGE_NOT_FOUND"), "removal never asks a registry");
  assert.deepEqual(codesAt("/machines/{id}/wait", "get", 408), ["WAIT_TIMEOUT"]);
});

test("routeErrors groups codes by their status and keeps each code once", () => {
  const r = routeErrors(["MACHINE_NOT_FOUND", "INTERNAL"], ["MACHINE_NOT_FOUND", "AGENT_UNSUPPORTED_VERSION", "FILE_NOT_FOUND"]);
  assert.deepEqual(r.config.raises, ["MACHINE_NOT_FOUND", "INTERNAL", "AGENT_UNSUPPORTED_VERSION", "FILE_NOT_FOUND"]);
  assert.deepEqual(Object.keys(r.responses), ["404", "500", "502"]);
  assert.deepEqual(documentedCodes((r.responses[404] as { description: string }).description), ["MACHINE_NOT_FOUND", "FILE_NOT_FOUND"]);
});

test("answering with an undeclared code is logged; declared and transport codes are not", async () => {
  const lines: Array<{ msg: string; code?: string; route?: string }> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(JSON.parse(chunk.toString()) as { msg: string });
      cb();
    },
  });
  const app = Fastify({ loggerInstance: pino({ level: "warn" }, sink) });
  app.setErrorHandler(handleError);
  const errs = routeErrors(["MACHINE_NOT_FOUND"]);
  app.get<{ Querystring: { code: ErrorCode } }>("/x", { config: errs.config }, async (req) => {
    throw new HyperfleetError(req.query.code, "boom");
  });
  try {
    for (const code of ["MACHINE_NOT_FOUND", "TOO_MANY_REQUESTS", "FILE_NOT_FOUND"]) {
      const r = await app.inject({ method: "GET", url: `/x?code=${code}` });
      assert.equal(r.statusCode, httpStatus(code as ErrorCode));
    }
    const undeclared = lines.filter((l) => l.msg === UNDECLARED_CODE);
    assert.deepEqual(undeclared.map((l) => [l.code, l.route]), [["FILE_NOT_FOUND", "GET /x"]]);
  } finally {
    await app.close();
  }
});
