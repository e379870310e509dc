/**
 * Request validation with the same TypeBox schemas that feed the OpenAPI document. Bodies are
 * checked strictly (no type coercion: "2" is not a vcpu count); query strings and path params are
 * strings on the wire, so they are converted first. Defaults are applied after checking shape.
 * The first failing field becomes INVALID_ARGUMENT with `field` set.
 */
import type { FastifySchemaCompiler } from "fastify";
import type { TSchema } from "@sinclair/typebox";
import { TypeCompiler } from "@sinclair/typebox/compiler";
import { Value } from "@sinclair/typebox/value";
import { HyperfleetError } from "../core/errors.js";

/** "/env/FOO" -> "env.FOO", "/command/0" -> "command[0]"; "" (the whole part) -> the part's name. */
export function fieldName(pointer: string, part: string): string {
  if (pointer === "") return part;
  return pointer
    .slice(1)
    .split("/")
    .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"))
    .reduce((acc, seg, i) => (/^\d+$/.test(seg) ? `${acc}[${seg}]` : i === 0 ? seg : `${acc}.${seg}`), "");
}

export const typeboxValidatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const checker = TypeCompiler.Compile(schema);
  const coerce = httpPart !== "body";
  const part = httpPart ?? "request";
  return (data: unknown) => {
    const value = coerce ? Value.Convert(schema, data) : data;
    if (checker.Check(value)) return { value: Value.Default(schema, value) };
    const first = checker.Errors(value).First();
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
