/**
 * The host's tar for `hyperfleet cp` of directories: the argv is built here (pure), the process
 * streams (no tree or archive held in memory). The daemon's tar side is a ustar codec; GNU tar
 * and busybox tar read and write that.
 */
import { spawn } from "node:child_process";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { HyperfleetError } from "../core/errors.js";

/** Archive `name` (or `.`, its contents) relative to `dir`. */
export const packArgs = (dir: string, name: string): string[] => ["--format=ustar", "-C", dir, "-cf", "-", "--", name];
/** Unpack into `dir`, dropping `strip` leading components; never over absolute or `..` paths (tar's default). */
export const unpackArgs = (dir: string, strip: number): string[] => ["-C", dir, ...(strip > 0 ? [`--strip-components=${strip}`] : []), "-xf", "-"];

function failure(what: string, code: number | null, stderr: string): HyperfleetError {
  // No exit code: tar could not be started at all.
  return new HyperfleetError(code === null ? "HOST_TOOL_MISSING" : "INTERNAL", `tar ${what} on this host failed (${code ?? "not started"}): ${stderr.trim().slice(0, 500)}`);
}

/** A running `tar -c`: its stdout and its end (rejects when tar failed). */
export function pack(dir: string, name: string): { stream: Readable; done: Promise<void> } {
  const p = spawn("tar", packArgs(dir, name), { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  p.stderr.on("data", (d: Buffer) => (stderr.length < 4096 ? (stderr += d.toString()) : undefined));
  const done = new Promise<void>((resolve, reject) => {
    p.once("error", (e) => reject(failure("-c", null, e.message)));
    p.once("close", (code) => (code === 0 ? resolve() : reject(failure("-c", code, stderr))));
  });
  return { stream: p.stdout, done };
}

/** Feeds `archive` to `tar -x`; resolves once tar unpacked all of it. */
export async function unpack(archive: Readable, dir: string, strip: number): Promise<void> {
  const p = spawn("tar", unpackArgs(dir, strip), { stdio: ["pipe", "ignore", "pipe"] });
  let stderr = "";
  p.stderr.on("data", (d: Buffer) => (stderr.length < 4096 ? (stderr += d.toString()) : undefined));
  const closed = new Promise<void>((resolve, reject) => {
    p.once("error", (e) => reject(failure("-x", null, e.message)));
    p.once("close", (code) => (code === 0 ? resolve() : reject(failure("-x", code, stderr))));
  });
  await Promise.all([pipeline(archive, p.stdin), closed]);
}
