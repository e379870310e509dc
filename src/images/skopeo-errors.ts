/**
 * Turning skopeo's stderr into our error codes (pure). skopeo has no machine-readable errors; these
 * patterns are the wording of containers/image and of the registry's own error codes (Distribution
 * spec: MANIFEST_UNKNOWN, NAME_UNKNOWN, UNAUTHORIZED, DENIED), which are stable across versions.
 */
import { HyperfleetError, type ErrorCode } from "../core/errors.js";

interface Rule {
  test: RegExp;
  code: ErrorCode;
  message: (image: string, registry: string) => string;
}

const RULES: readonly Rule[] = [
  { test: /no space left on device/i, code: "HOST_DISK_FULL", message: () => "the image cache's filesystem is full; free space or lower the cache size limit" },
  {
    test: /manifest unknown|name unknown|repository name not known|not found: manifest|\b404\b/i,
    code: "IMAGE_NOT_FOUND",
    message: (image) => `image ${image} does not exist in its registry; check the name and tag`,
  },
  {
    test: /unauthorized|authentication required|invalid username\/password|requested access to the resource is denied|denied:|\b401\b|\b403\b/i,
    code: "IMAGE_UNAUTHORIZED",
    message: (image, registry) => `registry ${registry} refused to serve ${image}: credentials are missing or wrong (some registries also say this for a repository that does not exist)`,
  },
  {
    test: /server gave HTTP response to HTTPS client/i,
    code: "IMAGE_REGISTRY_UNREACHABLE",
    message: (_image, registry) => `registry ${registry} speaks plain HTTP; add "${registry}" to insecureRegistries if that is intended`,
  },
  {
    test: /x509:|certificate|tls: /i,
    code: "IMAGE_REGISTRY_UNREACHABLE",
    message: (_image, registry) => `TLS to registry ${registry} failed (untrusted or invalid certificate)`,
  },
  {
    test: /connection refused|no such host|i\/o timeout|network is unreachable|no route to host|connection reset|handshake timeout|dial tcp|server misbehaving|temporary failure in name resolution/i,
    code: "IMAGE_REGISTRY_UNREACHABLE",
    message: (_image, registry) => `registry ${registry} cannot be reached; check the address and that it is up`,
  },
  {
    test: /no image found in (image index|manifest list) for architecture|choosing image instance/i,
    code: "IMAGE_PLATFORM_UNSUPPORTED",
    message: (image) => `image ${image} has no linux/amd64 variant`,
  },
];

/** The last meaningful line of skopeo's stderr, without the logrus prefix. */
export function skopeoReason(stderr: string): string {
  const line = stderr.trim().split("\n").filter(Boolean).at(-1) ?? "";
  const m = /msg="((?:[^"\\]|\\.)*)"/.exec(line);
  return (m ? m[1]!.replace(/\\"/g, '"') : line).slice(0, 500);
}

/** Classifies a failed skopeo run; anything unrecognized is IMAGE_PULL_FAILED with skopeo's words. */
export function classifySkopeoError(stderr: string, image: string, registry: string, cause?: unknown): HyperfleetError {
  const reason = skopeoReason(stderr);
  for (const r of RULES) {
    if (r.test.test(reason)) return new HyperfleetError(r.code, r.message(image, registry), { cause, details: { image, registry, reason } });
  }
  return new HyperfleetError("IMAGE_PULL_FAILED", `pulling ${image} failed: ${reason || "skopeo failed without a message"}`, { cause, details: { image, registry, reason } });
}
