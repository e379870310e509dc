/**
 * Coordination between processes through files, for library machines (docs/adr/0008, "Library
 * machines"): they have no store, and several processes may share a data dir. A lease is created
 * exclusively (complete content written to a temp file first, then link(2)ed into place, which
 * fails with EEXIST exactly like O_EXCL and never shows a half-written file); the lock is such a
 * lease too. A lease names its owner by pid and start time, so a reused pid is not taken for it.
 */
import { randomBytes } from "node:crypto";
import { link, mkdir, readFile, readdir, rename, unlink, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { HyperfleetError } from "../core/errors.js";
import { sleep } from "../host/async.js";

/** A process, told apart from a later one with the same pid by its start time. */
export interface Owner {
  pid: number;
  /** Field 22 of /proc/<pid>/stat: clock ticks after boot. */
  start: string;
}

/** Start time of `pid`, or null when it is gone or a zombie. */
export async function processStart(pid: number): Promise<string | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (rest[0] === "Z" || rest[0] === "X") return null;
    return rest[19] ?? null;
  } catch {
    return null;
  }
}

let self: Owner | undefined;

export async function currentOwner(): Promise<Owner> {
  if (self === undefined) {
    const start = await processStart(process.pid);
    if (start === null) throw new HyperfleetError("INTERNAL", "cannot read /proc/self/stat");
    self = { pid: process.pid, start };
  }
  return self;
}

export async function ownerAlive(o: Owner | null | undefined): Promise<boolean> {
  if (!o || !Number.isInteger(o.pid) || o.pid <= 0) return false;
  return (await processStart(o.pid)) === o.start;
}

/** Creates `path` with `data` unless it exists: true when this call created it. */
export async function createExclusive(path: string, data: unknown): Promise<boolean> {
  const tmp = join(dirname(path), `.tmp-${basename(path)}-${process.pid}-${randomBytes(4).toString("hex")}`);
  await writeFile(tmp, `${JSON.stringify(data)}\n`, { mode: 0o600 });
  try {
    await link(tmp, path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw e;
  } finally {
    await unlink(tmp).catch(() => {});
  }
}

/** Replaces `path` as a whole (the owner updating its own lease, under the lock). */
export async function replaceFile(path: string, data: unknown): Promise<void> {
  const tmp = join(dirname(path), `.tmp-${basename(path)}-${process.pid}-${randomBytes(4).toString("hex")}`);
  await writeFile(tmp, `${JSON.stringify(data)}\n`, { mode: 0o600 });
  await rename(tmp, path);
}

/** The parsed file; null when it does not exist, "corrupt" when it is not JSON (never written by us). */
export async function readJson<T>(path: string): Promise<T | null | "corrupt"> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
  try {
    return JSON.parse(text) as T;
  } catch {
    return "corrupt";
  }
}

export async function removeFile(path: string): Promise<void> {
  await unlink(path).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== "ENOENT") throw e;
  });
}

/** Lease files of a directory (temp files of a create in progress are not). */
export async function leaseNames(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).filter((n) => n.endsWith(".json") && !n.startsWith("."));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw e;
  }
}

interface LockContent extends Owner {
  nonce: string;
}

export interface LockOptions {
  /** Give up (NETWORK_SETUP_FAILED) after waiting this long for a live holder. */
  timeoutMs?: number;
}

/**
 * Runs `fn` holding `<dir>/lock` against every process (and every caller of this process). A lock
 * whose holder is dead is broken: renamed away first, then removed only if it is still the dead
 * holder's (a live lock renamed by a racing breaker is linked back).
 */
export async function withFileLock<T>(dir: string, fn: () => Promise<T>, opts: LockOptions = {}): Promise<T> {
  const path = join(dir, "lock");
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const me: LockContent = { ...(await currentOwner()), nonce: randomBytes(8).toString("hex") };
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  let wait = 2;
  for (;;) {
    if (await createExclusive(path, me)) break;
    const held = await readJson<LockContent>(path);
    if (held !== null && (held === "corrupt" || !(await ownerAlive(held)))) await breakLock(path, held);
    else if (Date.now() > deadline) {
      const who = held === null ? "another process" : `pid ${held.pid}`;
      throw new HyperfleetError("NETWORK_SETUP_FAILED", `${path} is held by ${who} for more than ${opts.timeoutMs ?? 30_000} ms`);
    } else {
      await sleep(wait);
      wait = Math.min(wait * 2, 50);
    }
  }
  try {
    return await fn();
  } finally {
    const now = await readJson<LockContent>(path);
    if (now !== null && now !== "corrupt" && now.nonce === me.nonce) await removeFile(path);
  }
}

async function breakLock(path: string, stale: LockContent | "corrupt"): Promise<void> {
  const aside = `${path}.broken-${process.pid}-${randomBytes(4).toString("hex")}`;
  try {
    await rename(path, aside);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
    throw e;
  }
  const moved = await readJson<LockContent>(aside);
  const same = stale === "corrupt" ? moved === "corrupt" : moved !== null && moved !== "corrupt" && moved.nonce === stale.nonce;
  // A live holder's lock taken between our read and the rename goes back, unless a third process
  // took the name meanwhile (then both that one and the holder believe they hold it: three-way
  // race on a dead holder's lock, not prevented here).
  if (!same) await link(aside, path).catch(() => {});
  await removeFile(aside);
}
