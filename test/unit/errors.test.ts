/** docs/errors.md must list every ERROR_CODES entry, with its category and the HTTP status the API uses. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { ERROR_CODES, type ErrorCode } from "../../src/core/errors.js";
import { categoryStatus, httpStatus } from "../../src/api/http-status.js";
import { errorBody, toApiError } from "../../src/api/errors.js";
import { HyperfleetError } from "../../src/core/errors.js";

const doc = readFileSync(new URL("../../docs/errors.md", import.meta.url), "utf8");
const rows = new Map<string, { status: number; category: string }>();
for (const line of doc.split("\n")) {
  const m = /^\|\s*`([A-Z_]+)`\s*\|\s*(\d{3})\s*\|\s*([a-z_]+)\s*\|/.exec(line);
  if (m) {
    assert.ok(!rows.has(m[1]!), `${m[1]} is listed twice in docs/errors.md`);
    rows.set(m[1]!, { status: Number(m[2]), category: m[3]! });
  }
}

test("docs/errors.md has one row per ERROR_CODES entry, and no others", () => {
  assert.deepEqual([...rows.keys()].sort(), Object.keys(ERROR_CODES).sort());
});

test("each row's category and HTTP status match the code", () => {
  for (const [code, category] of Object.entries(ERROR_CODES)) {
    const row = rows.get(code);
    assert.ok(row, `${code} missing from docs/errors.md`);
    assert.equal(row.category, category, `${code}: category`);
    assert.equal(row.status, httpStatus(code as ErrorCode), `${code}: HTTP status`);
  }
});

test("client mistakes are 4xx, never 5xx", () => {
  for (const code of ["INVALID_ARGUMENT", "MALFORMED_REQUEST", "ROUTE_NOT_FOUND", "BODY_TOO_LARGE", "UNSUPPORTED_MEDIA_TYPE", "NOT_SUPPORTED_YET", "FILE_TOO_LARGE", "WAIT_TIMEOUT"] as const) {
    const s = httpStatus(code);
    assert.ok(s >= 400 && s < 500, `${code} -> ${s}`);
  }
  assert.equal(httpStatus("EXEC_TIMEOUT"), 504);
  assert.equal(httpStatus("WAIT_TIMEOUT"), 408);
});

test("Fastify's own errors map to stable codes", () => {
  const fe = (statusCode: number, message = "x") => Object.assign(new Error(message), { statusCode });
  assert.equal(toApiError(fe(413)).code, "BODY_TOO_LARGE");
  assert.equal(toApiError(fe(413), { bodyTooLargeCode: "FILE_TOO_LARGE" }).code, "FILE_TOO_LARGE");
  assert.equal(toApiError(fe(415)).code, "UNSUPPORTED_MEDIA_TYPE");
  assert.equal(toApiError(fe(400)).code, "MALFORMED_REQUEST");
  assert.equal(toApiError(fe(414)).code, "MALFORMED_REQUEST");
  assert.equal(toApiError(fe(404)).code, "ROUTE_NOT_FOUND");
  assert.equal(toApiError(new TypeError("boom")).code, "INTERNAL");
  assert.equal(toApiError("a string").code, "INTERNAL");
});

test("error bodies carry only public details", () => {
  const e = new HyperfleetError("INVALID_STATE_TRANSITION", "nope", { details: { current_status: "stopped", secret: "x", field: "status" } });
  assert.deepEqual(errorBody(e), { error: { code: "INVALID_STATE_TRANSITION", message: "nope", current_status: "stopped", field: "status" } });
  // INTERNAL errors do not leak the cause's message.
  const internal = toApiError(new Error("SQLITE_CORRUPT at /var/lib/secret"));
  assert.doesNotMatch(errorBody(internal).error.message, /SQLITE/);
});

test("ADR 0003 lists exactly the codes whose status is not their category's, with that status", () => {
  const adr = readFileSync(new URL("../../docs/adr/0003-status-codes-outside-categories.md", import.meta.url), "utf8");
  const listed = new Map<string, number>();
  for (const m of adr.matchAll(/`([A-Z_]+)` -> (\d{3})/g)) listed.set(m[1]!, Number(m[2]));
  const exceptions = new Map<string, number>();
  for (const [code, category] of Object.entries(ERROR_CODES)) {
    const s = httpStatus(code as ErrorCode);
    if (s !== categoryStatus(category)) exceptions.set(code, s);
  }
  assert.deepEqual([...listed].sort(), [...exceptions].sort());
});
