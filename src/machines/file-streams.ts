/**
 * Files as streams through the guest agent, with bounded host memory whatever their size: a
 * download is read in windows (READ with OFFSET/LENGTH, two prefetched while one is sent), so the
 * agent connection, shared by every operation of the machine, is never paused and a slow client
 * holds at most three windows (12 MiB); an upload is written as its body arrives (the
 * agent client waits for the socket to drain); a directory travels as tar both ways
 * (src/machines/tar.ts), walked with READDIR without following symlinks.
 */
import { posix } from "node:path";
import type { AgentClient, DirEntry } from "../agent/client.js";
import { HyperfleetError } from "../core/errors.js";
import type { FileStatView } from "../core/ports/services.js";
import { cancellable } from "../host/async.js";
import { encodeHeader, END_OF_ARCHIVE, padding, readTar } from "./tar.js";

/** Bytes per READ of a streamed download. */
export const WINDOW = 4 * 1024 * 1024;
/** READs in flight ahead of the consumer: at most (PREFETCH + 1) windows are held at once. */
const PREFETCH = 2;
/** Entries a tar download walks at most (their metadata is held while the archive is sent). */
export const TAR_MAX_ENTRIES = 100_000;
/** Names and targets of an uploaded archive's symlinks, held until they are created last. */
const LINKS_MAX_BYTES = 16 * 1024 * 1024;

export interface StreamLimits {
  /** HYPERFLEET_FILE_MAX_SIZE: bytes of one file. */
  maxSize: number;
  /** HYPERFLEET_FILE_TRANSFER_TIMEOUT: each step with the guest (a window, a READDIR, an entry). */
  timeoutMs: number;
  signal?: AbortSignal;
}

export function tooLarge(what: string, maxSize: number, cause?: unknown): HyperfleetError {
  return new HyperfleetError("FILE_TOO_LARGE", `${what}; the limit is ${maxSize} (HYPERFLEET_FILE_MAX_SIZE)`, {
    details: { field: "path", limit: maxSize },
    ...(cause !== undefined && { cause }),
  });
}

/**
 * The bytes of `path` from the guest, window by window. `exactly`: send that many bytes, cutting a
 * file that grew and padding one that shrank with zeros (a tar header already promised the size).
 * Otherwise read to EOF, FILE_TOO_LARGE past maxSize (files whose stat says 0, like /proc's).
 */
export async function* readWindows(agent: AgentClient, path: string, lim: StreamLimits, exactly?: number): AsyncGenerator<Buffer> {
  const stop = new AbortController();
  const signal = lim.signal ? AbortSignal.any([stop.signal, lim.signal]) : stop.signal;
  // The frames' payloads as they came (no concatenation: one copy less per byte).
  const fetch = (offset: number, length: number) => {
    const parts: Buffer[] = [];
    const read = (s: AbortSignal) => agent.readFile(path, { offset, length, signal: s, onChunk: (c) => parts.push(c) });
    const p = cancellable(read, lim.timeoutMs, "FILE_TRANSFER_TIMEOUT", `download of ${path}`, signal).then(() => parts);
    p.catch(() => undefined); // a prefetch the consumer never awaits (it stopped) must not be unhandled
    return { length, p };
  };
  // Without a known size, never ask beyond one byte past the limit: that byte says "too large".
  const end = exactly ?? lim.maxSize + 1;
  const queue: Array<{ length: number; p: Promise<Buffer[]> }> = [];
  let planned = 0; // bytes asked for so far
  let off = 0; // bytes received so far
  try {
    for (;;) {
      // The guest always has the next READ queued when it finishes one: no round trip between windows.
      while (queue.length < PREFETCH && planned < end) {
        const length = Math.min(WINDOW, end - planned);
        queue.push(fetch(planned, length));
        planned += length;
      }
      const head = queue.shift();
      if (!head) break;
      const parts = await head.p;
      let got = 0;
      for (const part of parts) got += part.length;
      off += got;
      if (exactly === undefined && off > lim.maxSize) throw tooLarge(`${path} has more than ${lim.maxSize} bytes`, lim.maxSize);
      for (const part of parts) yield part;
      if (got < head.length) break; // EOF (or a file that shrank)
    }
    if (exactly !== undefined && off < exactly) yield Buffer.alloc(exactly - off);
  } finally {
    stop.abort(); // EOF or the consumer went away: cancel the prefetches in the guest
  }
}

/**
 * Starts an iteration and waits for its first item, so that what fails at once (the first window:
 * a file gone, or one whose stat said 0 and that is over a limit below a window) fails before the
 * caller answers; the iterable then replays that item.
 */
export async function primed(it: AsyncGenerator<Buffer>): Promise<AsyncIterable<Buffer>> {
  const first = await it.next();
  return (async function* () {
    if (first.done) return;
    yield first.value;
    yield* it;
  })();
}

/** A file to download: its stat, checked against the limit before anything is sent. */
export async function downloadable(agent: AgentClient, path: string, lim: StreamLimits): Promise<FileStatView> {
  const st = await cancellable(() => agent.stat(path), lim.timeoutMs, "FILE_TRANSFER_TIMEOUT", `stat of ${path}`, lim.signal);
  if (st.type === "directory") {
    throw new HyperfleetError("FILE_IS_DIRECTORY", `${path} is a directory; download it as tar with format=tar`, { details: { field: "path" } });
  }
  if (st.size > lim.maxSize) throw tooLarge(`${path} is ${st.size} bytes`, lim.maxSize);
  return st;
}

interface TreeNode {
  /** Path in the archive. */
  rel: string;
  abs: string;
  entry: Omit<DirEntry, "name">;
}

/**
 * Every entry under `root` (root first, parents before children), READDIR'd without following
 * symlinks below the root; at most TAR_MAX_ENTRIES, each file at most maxSize.
 */
export async function walkTree(agent: AgentClient, root: string, lim: StreamLimits): Promise<TreeNode[]> {
  const st = await cancellable(() => agent.stat(root), lim.timeoutMs, "FILE_TRANSFER_TIMEOUT", `stat of ${root}`, lim.signal);
  const name = posix.basename(posix.normalize(root)) || "root";
  const nodes: TreeNode[] = [{ rel: name, abs: root, entry: st }];
  if (st.type === "file" && st.size > lim.maxSize) throw tooLarge(`${root} is ${st.size} bytes`, lim.maxSize);
  const dirs: TreeNode[] = st.type === "directory" ? [nodes[0]!] : [];
  for (let i = 0; i < dirs.length; i++) {
    const dir = dirs[i]!;
    const left = TAR_MAX_ENTRIES - nodes.length;
    const { entries, truncated } = await cancellable(
      (s) => agent.readdir(dir.abs, { nofollow: i > 0, maxEntries: left, signal: s }),
      lim.timeoutMs,
      "FILE_TRANSFER_TIMEOUT",
      `listing ${dir.abs}`,
      lim.signal,
    );
    if (truncated) throw new HyperfleetError("FILE_TOO_LARGE", `${root} has more than ${TAR_MAX_ENTRIES} entries; download it in parts`, { details: { field: "path", limit: TAR_MAX_ENTRIES } });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const node = { rel: `${dir.rel}/${e.name}`, abs: posix.join(dir.abs, e.name), entry: e };
      if (e.type === "file" && e.size > lim.maxSize) throw tooLarge(`${node.abs} is ${e.size} bytes`, lim.maxSize);
      nodes.push(node);
      if (e.type === "directory") dirs.push(node);
    }
  }
  return nodes;
}

/** The tar archive of walked nodes; files are read window by window. Sockets, FIFOs and devices are left out. */
export async function* tarStream(agent: AgentClient, nodes: readonly TreeNode[], lim: StreamLimits): AsyncGenerator<Buffer> {
  for (const n of nodes) {
    const e = n.entry;
    if (e.type === "other") continue;
    const base = { name: n.rel, mode: e.mode, uid: e.uid, gid: e.gid, mtime: e.mtime };
    if (e.type === "directory") yield encodeHeader({ ...base, type: "directory", size: 0 });
    else if (e.type === "symlink") yield encodeHeader({ ...base, type: "symlink", size: 0, linkname: e.target ?? "" });
    else {
      yield encodeHeader({ ...base, type: "file", size: e.size });
      yield* readWindows(agent, n.abs, lim, e.size);
      yield padding(e.size);
    }
  }
  yield END_OF_ARCHIVE;
}

/** What an unpacked tar created; hardlinks and special files are skipped (counted). */
export interface UnpackResult {
  files: number;
  directories: number;
  symlinks: number;
  bytes: number;
  skipped: number;
}

function badEntry(name: string, why: string): HyperfleetError {
  return new HyperfleetError("FILE_PATH_INVALID", `tar entry ${JSON.stringify(name.slice(0, 200))}: ${why}; nothing after it was unpacked`, { details: { field: "body", entry: name.slice(0, 200) } });
}

/**
 * An entry's path relative to the destination: refused when absolute, with a `..` component or a
 * NUL byte, so nothing lands outside it. "" for the archive's `.`.
 */
export function safeRelative(name: string): string {
  if (name.includes("\0")) throw badEntry(name, "the name has a NUL byte");
  if (name.startsWith("/")) throw badEntry(name, "absolute paths are refused");
  const parts = name.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) throw badEntry(name, "'..' components are refused");
  return parts.join("/");
}

/** Every proper prefix of a relative path: "a/b/c" -> "a", "a/b". */
function parents(rel: string): string[] {
  const parts = rel.split("/");
  return parts.slice(1).map((_, i) => parts.slice(0, i + 1).join("/"));
}

/**
 * Unpacks a tar body into `dest` (created with its parents) as it arrives: directories through
 * MKDIR, files through WRITE (temp file + rename each), in archive order. Symlinks are created last
 * (as GNU tar does for safety), so no entry of the archive is written through one; a symlink below
 * another of its symlinks, or where a non-empty directory is, is refused. Hardlinks and special
 * files are counted in `skipped`. A refused entry ends the upload; what came before it stays.
 */
export async function unpackTar(agent: AgentClient, dest: string, body: AsyncIterable<Buffer>, lim: StreamLimits): Promise<UnpackResult> {
  const step = <T>(what: string, op: (s: AbortSignal) => Promise<T>) => cancellable(op, lim.timeoutMs, "FILE_TRANSFER_TIMEOUT", what, lim.signal);
  await step(`mkdir ${dest}`, () => agent.mkdir(dest, { parents: true }));
  const out: UnpackResult = { files: 0, directories: 0, symlinks: 0, bytes: 0, skipped: 0 };
  const links: Array<{ rel: string; name: string; target: string }> = [];
  let linkBytes = 0;
  let entries = 0;
  for await (const e of readTar(body)) {
    if (++entries > TAR_MAX_ENTRIES) throw new HyperfleetError("FILE_TOO_LARGE", `the archive has more than ${TAR_MAX_ENTRIES} entries; upload it in parts`, { details: { field: "body", limit: TAR_MAX_ENTRIES } });
    const rel = safeRelative(e.header.name);
    const abs = rel === "" ? dest : posix.join(dest, rel);
    const mode = e.header.mode & 0o7777;
    if (e.header.type === "directory") {
      if (rel !== "") await step(`mkdir ${abs}`, () => agent.mkdir(abs, { parents: true, mode }));
      out.directories++;
    } else if (e.header.type === "file") {
      if (rel === "") throw badEntry(e.header.name, "a file cannot replace the destination directory");
      if (e.header.size > lim.maxSize) throw tooLarge(`tar entry ${rel} is ${e.header.size} bytes`, lim.maxSize);
      out.bytes += await step(`upload of ${abs}`, (s) => agent.writeFile(abs, e.body, { mode, mkdirs: true, signal: s }));
      out.files++;
    } else if (e.header.type === "symlink") {
      if (rel === "") throw badEntry(e.header.name, "a symlink cannot replace the destination directory");
      const target = e.header.linkname ?? "";
      linkBytes += rel.length + target.length;
      if (linkBytes > LINKS_MAX_BYTES) throw new HyperfleetError("FILE_TOO_LARGE", `the archive's symlinks take more than ${LINKS_MAX_BYTES} bytes of names; upload it in parts`, { details: { field: "body", limit: LINKS_MAX_BYTES } });
      links.push({ rel, name: e.header.name, target });
    } else {
      out.skipped++;
    }
  }
  const made = new Set<string>();
  for (const l of links) {
    if (parents(l.rel).some((p) => made.has(p))) throw badEntry(l.name, "it lies below another symlink of the archive");
    if (l.target === "") throw badEntry(l.name, "the symlink has an empty target");
    const abs = posix.join(dest, l.rel);
    await step(`symlink ${abs}`, () => agent.mkdir(posix.dirname(abs), { parents: true }));
    await step(`symlink ${abs}`, async () => {
      try {
        await agent.symlink(l.target, abs);
      } catch (e) {
        if (!(e instanceof HyperfleetError && e.code === "FILE_ALREADY_EXISTS")) throw e;
        // Replaces a file or an empty directory there, as tar does; a non-empty directory stays.
        await agent.remove(abs).catch((r: unknown) => {
          throw r instanceof HyperfleetError && r.code === "FILE_NOT_EMPTY" ? badEntry(l.name, "a symlink where a non-empty directory is") : r;
        });
        await agent.symlink(l.target, abs);
      }
    });
    made.add(l.rel);
    out.symlinks++;
  }
  return out;
}

/**
 * A request body counted as it streams: FILE_TOO_LARGE as soon as it passes maxSize, so an upload
 * without Content-Length (chunked) is refused without holding what came before.
 */
export async function* capped(body: AsyncIterable<Buffer>, maxSize: number, onChunk?: () => void): AsyncGenerator<Buffer> {
  let seen = 0;
  for await (const chunk of body) {
    seen += chunk.length;
    if (seen > maxSize) throw tooLarge(`the body has more than ${maxSize} bytes`, maxSize);
    onChunk?.();
    yield chunk;
  }
}
