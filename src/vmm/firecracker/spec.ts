/**
 * Firecracker's own API definition (Swagger 2.0) as a request validator: every request the driver
 * sends is checked against it, because no Firecracker can run on our build machines to tell us we
 * got a field wrong. Pure apart from reading the spec file, whose location the caller passes.
 *
 * Two readings stricter than the file: objects without `additionalProperties` are closed (Firecracker
 * deserialises its bodies with serde `deny_unknown_fields`, so a misspelt field is a 400 there, and
 * an open schema would let it through here); a body the operation does not declare is refused.
 */
import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { Ajv, type ValidateFunction } from "ajv";

export type FcMethod = "GET" | "PUT" | "PATCH";

export type FcContractErrorCode = "unknown_path" | "method_not_allowed" | "body_required" | "body_not_allowed" | "body_invalid";

export interface FcContractError {
  code: FcContractErrorCode;
  message: string;
}

export interface FcContractOptions {
  /** false: objects accept properties the spec does not name (the file's literal reading). */
  closedObjects?: boolean;
}

interface Operation {
  bodyRequired: boolean;
  validate: ValidateFunction | null;
}

interface Route {
  template: string;
  regex: RegExp;
  methods: Map<string, Operation>;
}

// Swagger 2.0 keys that are annotations only (ajv's strict mode refuses unknown keywords, which is
// how we learn of a keyword this list misses). `format` carries non-JSON-Schema values here
// (int64, and a regex for an IPv4 address), so it is dropped rather than half-checked.
const DROPPED = new Set(["example", "readOnly", "discriminator", "xml", "externalDocs", "format"]);
const DEFS_ID = "firecracker-definitions";

/** Swagger 2.0 schema -> JSON Schema (draft-07, ajv's default). */
function toJsonSchema(node: unknown, closed: boolean): unknown {
  if (Array.isArray(node)) return node.map((n) => toJsonSchema(n, closed));
  if (node === null || typeof node !== "object") return node;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node as Record<string, unknown>)) {
    if (k.startsWith("x-") || DROPPED.has(k)) continue;
    if (k === "$ref" && typeof v === "string") out[k] = v.startsWith("#/definitions/") ? `${DEFS_ID}${v}` : v;
    else if (k === "properties") out[k] = Object.fromEntries(Object.entries(v as object).map(([p, s]) => [p, toJsonSchema(s, closed)]));
    // Draft-4 / Swagger booleans beside minimum/maximum become draft-07's numeric bounds.
    else if ((k === "exclusiveMinimum" || k === "exclusiveMaximum") && typeof v === "boolean") continue;
    else out[k] = toJsonSchema(v, closed);
  }
  const src = node as Record<string, unknown>;
  if (src.exclusiveMinimum === true && typeof src.minimum === "number") {
    out.exclusiveMinimum = src.minimum;
    delete out.minimum;
  }
  if (src.exclusiveMaximum === true && typeof src.maximum === "number") {
    out.exclusiveMaximum = src.maximum;
    delete out.maximum;
  }
  if (closed && src.type === "object" && src.properties && src.additionalProperties === undefined) out.additionalProperties = false;
  return out;
}

function pathRegex(template: string): RegExp {
  const parts = template.split(/\{[^}/]+\}/).map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  return new RegExp(`^${parts.join("[^/]+")}$`);
}

export class FirecrackerContract {
  /** The spec's `info.version`: the Firecracker release whose API this is. */
  readonly version: string;
  private readonly routes: Route[] = [];

  constructor(specPath: string | URL, opts: FcContractOptions = {}) {
    // YAML 1.2 core schema: the 1.1 schema would read the logger level `Off` as the boolean false.
    const doc = parse(readFileSync(specPath, "utf8"), { schema: "core" }) as {
      swagger?: string;
      info?: { version?: unknown };
      paths?: Record<string, Record<string, { parameters?: { in: string; required?: boolean; schema?: unknown }[] }>>;
      definitions?: Record<string, unknown>;
    };
    if (doc.swagger !== "2.0" || !doc.paths) throw new Error(`${String(specPath)}: not a Swagger 2.0 API definition`);
    this.version = String(doc.info?.version);
    const closed = opts.closedObjects ?? true;
    const ajv = new Ajv({ strict: true, allErrors: true });
    ajv.addSchema({ $id: DEFS_ID, definitions: toJsonSchema(doc.definitions ?? {}, closed) });
    for (const [template, ops] of Object.entries(doc.paths)) {
      const methods = new Map<string, Operation>();
      for (const [method, op] of Object.entries(ops)) {
        const body = (op.parameters ?? []).find((p) => p.in === "body");
        // Compiled now, so a dangling $ref or an unconverted keyword fails at load, not mid-boot.
        methods.set(method.toUpperCase(), {
          bodyRequired: body?.required === true,
          validate: body?.schema ? ajv.compile(toJsonSchema(body.schema, closed) as object) : null,
        });
      }
      this.routes.push({ template, regex: pathRegex(template), methods });
    }
  }

  /** null when the spec allows the request; else what it breaks. */
  validateRequest(method: string, path: string, body: unknown): FcContractError | null {
    const route = this.routes.find((r) => r.regex.test(path));
    if (!route) return { code: "unknown_path", message: `${path}: no such path in the Firecracker ${this.version} API` };
    const op = route.methods.get(method.toUpperCase());
    if (!op) return { code: "method_not_allowed", message: `${method} ${route.template}: allowed: ${[...route.methods.keys()].join(", ")}` };
    if (body === undefined) return op.bodyRequired ? { code: "body_required", message: `${method} ${route.template} needs a body` } : null;
    if (!op.validate) return { code: "body_not_allowed", message: `${method} ${route.template} takes no body` };
    if (op.validate(body)) return null;
    const errs = (op.validate.errors ?? []).map((e) => `${e.instancePath || "/"} ${e.message ?? ""}${e.params && "additionalProperty" in e.params ? ` (${String(e.params.additionalProperty)})` : ""}`);
    return { code: "body_invalid", message: `${method} ${route.template}: ${errs.join("; ")}` };
  }
}
