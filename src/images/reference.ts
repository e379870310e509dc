/**
 * Image references (pure): parsing and Docker-compatible normalization, following the grammar of
 * distribution/reference. `alpine` -> `docker.io/library/alpine:latest`, `user/app` ->
 * `docker.io/user/app:latest`, `127.0.0.1:5000/x@sha256:...` stays on its registry.
 */
import { HyperfleetError } from "../core/errors.js";

/** A parsed, normalized image reference. */
export interface ImageRef {
  /** Registry host with optional port: `docker.io`, `127.0.0.1:5000`, `localhost:5000`. */
  registry: string;
  /** Repository path inside the registry: `library/alpine`. */
  repository: string;
  /** Tag; `latest` when neither a tag nor a digest was given. Null when only a digest was. */
  tag: string | null;
  /** `sha256:<64 hex>`; when set it wins over the tag for pulling. */
  digest: string | null;
}

export const DOCKER_HUB = "docker.io";
const MAX_NAME_LENGTH = 255;
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
// No bracketed IPv6 literals: distribution/reference allows them, but the skopeo we pull with
// (1.9) rejects them as "invalid reference format", so they could only ever fail later, as a 502.
const DOMAIN = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::([0-9]{1,5}))?$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;

function invalid(input: string, why: string): HyperfleetError {
  return new HyperfleetError("INVALID_ARGUMENT", `invalid image reference ${JSON.stringify(input)}: ${why}`, { details: { field: "image" } });
}

/** True for a `sha256:<64 lowercase hex>` digest. */
export function isDigest(s: string): boolean {
  return DIGEST.test(s);
}

/**
 * Parses and normalizes a reference. Throws INVALID_ARGUMENT (field `image`) with the reason.
 *
 * @example parseImageRef("alpine") // { registry: "docker.io", repository: "library/alpine", tag: "latest", digest: null }
 */
export function parseImageRef(input: string): ImageRef {
  if (input.length === 0 || /\s/.test(input)) throw invalid(input, "it must be non-empty and contain no spaces");
  let rest = input;
  let digest: string | null = null;
  const at = rest.lastIndexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw invalid(input, "the digest must be sha256: followed by 64 lowercase hex digits");
  }
  let tag: string | null = null;
  const colon = rest.lastIndexOf(":");
  if (colon > rest.lastIndexOf("/") && !rest.slice(colon).includes("]")) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw invalid(input, `tag ${JSON.stringify(tag)} may only contain letters, digits, '_', '.' and '-' (at most 128, not starting with '.' or '-')`);
  }
  if (rest.length > MAX_NAME_LENGTH) throw invalid(input, `the name is longer than ${MAX_NAME_LENGTH} characters`);

  let registry = DOCKER_HUB;
  let path = rest;
  const slash = rest.indexOf("/");
  const first = slash < 0 ? "" : rest.slice(0, slash);
  // Same rule as Docker: the first component is a registry if it looks like a host name.
  if (first !== "" && (/[.:]/.test(first) || first === "localhost" || first !== first.toLowerCase())) {
    if (first.startsWith("[")) throw invalid(input, `IPv6 registry addresses such as ${JSON.stringify(first)} are not supported; use a host name`);
    const host = DOMAIN.exec(first);
    if (host === null) throw invalid(input, `${JSON.stringify(first)} is not a valid registry host[:port]`);
    const port = host[1] === undefined ? null : Number(host[1]);
    if (port !== null && (port < 1 || port > 65535)) throw invalid(input, `registry port ${port} is not between 1 and 65535`);
    registry = first === "index.docker.io" ? DOCKER_HUB : first;
    path = rest.slice(slash + 1);
  }
  const parts = path.split("/");
  for (const p of parts) {
    if (!PATH_COMPONENT.test(p)) throw invalid(input, `repository component ${JSON.stringify(p)} must be lowercase letters and digits, separated by '.', '_', '__' or '-'`);
  }
  if (registry === DOCKER_HUB && parts.length === 1) path = `library/${path}`;
  if (tag === null && digest === null) tag = "latest";
  return { registry, repository: path, tag, digest };
}

/** `registry/repository`, e.g. `docker.io/library/alpine`. */
export function repositoryName(ref: ImageRef): string {
  return `${ref.registry}/${ref.repository}`;
}

/** The normalized string form: `registry/repo:tag`, `registry/repo@digest` or both. */
export function formatImageRef(ref: ImageRef): string {
  return `${repositoryName(ref)}${ref.tag !== null ? `:${ref.tag}` : ""}${ref.digest !== null ? `@${ref.digest}` : ""}`;
}

/** The same repository pinned to a digest (the tag dropped): what we actually pull. */
export function pinned(ref: ImageRef, digest: string): ImageRef {
  return { registry: ref.registry, repository: ref.repository, tag: null, digest };
}
