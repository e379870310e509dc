/**
 * Fetches Debian packages without installing them: `apt-get download` into a work directory, then
 * `dpkg-deb -x`. Nothing touches the host's /boot or dpkg database.
 */
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { HyperfleetError } from "../core/errors.js";
import { findKernelDependency, parseMadison, parseStanza, type PackageRef } from "./apt-parse.js";
import { runTool } from "./exec.js";

const DOWNLOAD_TIMEOUT_MS = 10 * 60_000;

/** Versions of a package that apt can download (from the local package lists, no network). */
export async function availableVersions(pkg: string, signal?: AbortSignal): Promise<string[]> {
  const { stdout } = await runTool("apt-cache", ["madison", pkg], { signal });
  return parseMadison(stdout.toString("utf8"), pkg);
}

/** The candidate version's control fields of a package, or null if apt does not know it. */
export async function candidateFields(pkg: string, signal?: AbortSignal): Promise<Record<string, string> | null> {
  try {
    const { stdout } = await runTool("apt-cache", ["show", "--no-all-versions", pkg], { signal });
    const fields = parseStanza(stdout.toString("utf8"));
    return fields.Version ? fields : null;
  } catch (e) {
    if (e instanceof HyperfleetError && e.code === "HOST_TOOL_MISSING") throw e;
    return null; // apt-cache exits 100 for unknown packages
  }
}

/**
 * Picks the exact package to fetch: `pinned` if apt can download that version, else the concrete
 * package the meta package's candidate depends on (e.g. linux-image-cloud-amd64 ->
 * linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)).
 */
export async function resolvePinnedOrCandidate(pinned: PackageRef, meta: string, signal?: AbortSignal): Promise<PackageRef> {
  if ((await availableVersions(pinned.name, signal)).includes(pinned.version)) return pinned;
  const fields = await candidateFields(meta, signal);
  const dep = fields ? findKernelDependency(fields.Depends ?? "") : null;
  if (dep === null) {
    throw new HyperfleetError(
      "GUEST_ASSETS_MISSING",
      `apt offers neither ${pinned.name}=${pinned.version} nor a candidate for ${meta}: run \`apt-get update\` (Debian bookworm sources needed)`,
    );
  }
  if (dep.version !== undefined) return { name: dep.name, version: dep.version };
  const depFields = await candidateFields(dep.name, signal);
  if (!depFields?.Version) throw new HyperfleetError("GUEST_ASSETS_MISSING", `apt has no candidate for ${dep.name}: run \`apt-get update\``);
  return { name: dep.name, version: depFields.Version };
}

/** Downloads `pkg=version` as a .deb into dir and returns its path. Needs the network (apt's mirror). */
export async function downloadDeb(pkg: PackageRef, dir: string, signal?: AbortSignal): Promise<string> {
  await runTool("apt-get", ["download", "-q", `${pkg.name}=${pkg.version}`], { cwd: dir, timeoutMs: DOWNLOAD_TIMEOUT_MS, signal });
  const debs = (await readdir(dir)).filter((f) => f.startsWith(`${pkg.name}_`) && f.endsWith(".deb"));
  if (debs.length !== 1) throw new HyperfleetError("INTERNAL", `apt-get download ${pkg.name} left ${debs.length} .deb files in ${dir}`);
  return join(dir, debs[0]!);
}

/** Unpacks a .deb's files (not its maintainer scripts) into dir. */
export async function extractDeb(deb: string, dir: string, signal?: AbortSignal): Promise<void> {
  await runTool("dpkg-deb", ["-x", deb, dir], { signal });
}
