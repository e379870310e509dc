/**
 * Request validation with the same TypeBox schemas that feed the OpenAPI document. Bodies are
 * checked strictly (no type coercion: "2" is not a vcpu count); query strings and path params are
 * strings on the wire, so they are converted first, but only when the string is exactly a number:
 * TypeBox's own conversion parses "1e9" and "1.5" as the integer 1, which would let a value past
 * the schema's maximum through. Defaults are applied after checking shape.
 * The first failing field becomes INVALID_ARGUMENT with `field` set.
 */
import type { FastifySchemaCompiler } from "fastify";
import type { TSchema } from "@sinclair/typebox";
import { TypeCompiler } from "@sinclair/typebox/compiler";
import { Value } from "@sinclair/typebox/value";
import type { ValueError } from "@sinclair/typebox/errors";
import { HyperfleetError, isErrorCode, type ErrorCode } from "../core/errors.js";

/** "/env/FOO" -> "env.FOO", "/command/0" -> "command[0]"; "" (the whole part) -> the part's name. */
export function fieldName(pointer: string, part: string): string {
  if (pointer === "") return part;
  return pointer
    .slice(1)
    .split("/")
    .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"))
    .reduce((acc, seg, i) => (/^\d+$/.test(seg) ? `${acc}[${seg}]` : i === 0 ? seg : `${acc}.${seg}`), "");
}

const INTEGER_TEXT = /^-?\d{1,16}$/;
const NUMBER_TEXT = /^-?\d{1,16}(\.\d{1,16})?$/;

function numericKind(schema: TSchema | undefined): "integer" | "number" | null {
  const t = (schema as { type?: unknown } | undefined)?.type;
  return t === "integer" || t === "number" ? t : null;
}

/**
 * Converts a query/params object like Value.Convert, then puts back every numeric field whose text
 * was not a plain decimal of the right kind, so the check fails on it with the field's name.
 */
function convertStrict(schema: TSchema, data: unknown): unknown {
  // Value.Convert may convert in place: keep the text to compare against.
  const original = data !== null && typeof data === "object" ? { ...(data as Record<string, unknown>) } : data;
  const value = Value.Convert(schema, data);
  const props = (schema as { properties?: Record<string, TSchema> }).properties;
  if (props === undefined || original === null || typeof original !== "object" || value === null || typeof value !== "object") return value;
  const out = { ...(value as Record<string, unknown>) };
  for (const [k, raw] of Object.entries(original)) {
    const kind = numericKind(props[k]);
    if (kind === null || typeof raw !== "string") continue;
    if (!(kind === "integer" ? INTEGER_TEXT : NUMBER_TEXT).test(raw)) out[k] = raw;
  }
  return out;
}

/**
 * A union's own error only says that no variant matched (`network` is a boolean or an object). When
 * a variant fails deeper inside the value (`network.internet` is not a boolean), that variant is
 * the one the client meant: its error names the field to fix.
 */
function deepest(e: ValueError): ValueError {
  let best = e;
  for (const variant of e.errors) {
    const sub = variant.First();
    if (sub !== undefined && sub.path.length > best.path.length) best = deepest(sub);
  }
  return best;
}

const NOT_FOUND_MESSAGE: Partial<Record<ErrorCode, (id: string) => string>> = {
  MACHINE_NOT_FOUND: (id) => `machine ${id} does not exist; GET /machines lists the machines`,
};

/** A path param whose schema says `x-not-found` (contract/common.ts): the same 404 an unknown id gets. */
function notFoundError(first: ValueError | undefined, params: unknown): HyperfleetError | null {
  const code = (first?.schema as { "x-not-found"?: unknown } | undefined)?.["x-not-found"];
  if (first === undefined || typeof code !== "string" || !isErrorCode(code)) return null;
  const raw = (params as Record<string, unknown> | null)?.[first.path.slice(1)];
  // Bounded: the id is echoed back in the message.
  const id = String(raw).slice(0, 100);
  return new HyperfleetError(code, NOT_FOUND_MESSAGE[code]?.(id) ?? `${id} does not exist`);
}

export const typeboxValidatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const checker = TypeCompiler.Compile(schema);
  const coerce = httpPart !== "body";
  const part = httpPart ?? "request";
  return (data: unknown) => {
    const value = coerce ? convertStrict(schema, data) : data;
    if (checker.Check(value)) return { value: Value.Default(schema, value) };
    const top = checker.Errors(value).First();
    const first = top && deepest(top);
    const notFound = part === "params" ? notFoundError(first, value) : null;
    if (notFound !== null) return { error: notFound };
    const field = fieldName(first?.path ?? "", part);
    // A schema may carry a friendlier `errorMessage` than TypeBox's generic one (e.g. for patterns).
    const custom = (first?.schema as { errorMessage?: unknown } | undefined)?.errorMessage;
    const what =
      first === undefined
        ? "is invalid"
        : first.message === "Expected required property"
          ? "is required"
          : typeof custom === "string"
            ? custom
            : first.message;
    const message =
      part === "body" && first?.path === ""
        ? `request body must be a JSON object (${what})`
        : `${field}: ${what}`;
    return { error: new HyperfleetError("INVALID_ARGUMENT", message, { details: { field } }) };
  };
};
