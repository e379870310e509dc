import { createReadStream, createWriteStream } from "node:fs";
import { chmod, mkdir, stat } from "node:fs/promises";
import { basename, dirname, join, posix, resolve } from "node:path";
import { pipeline } from "node:stream/promises";
import { HyperfleetError } from "../../core/errors.js";
import type { HyperfleetClient } from "../../sdk/index.js";
import { parse, usageError } from "../args.js";
import { showHelp, type Command } from "../command.js";
import type { Ctx } from "../context.js";
import { pack, unpack } from "../local-tar.js";

/** `ID:/path` or `NAME:/path` (Docker's form); a local path with a ':' is written `./a:b`. */
export function remoteSpec(arg: string): { ref: string; path: string } | null {
  const m = /^([A-Za-z0-9][A-Za-z0-9._-]*):(.*)$/.exec(arg);
  if (!m) return null;
  if (!m[2]!.startsWith("/")) throw usageError(`${arg}: the path in the machine must be absolute (${m[1]}:/tmp/file)`);
  return { ref: m[1]!, path: m[2]! };
}

const localStat = (p: string) => stat(p).catch(() => null);

export const cp: Command = {
  name: "cp",
  summary: "copy files or directories between the host and a machine",
  help: `usage: hyperfleet cp SRC DST

Copy a file or a directory into or out of a running machine; one side is ID:/path (or NAME:/path).
  hyperfleet cp ./data.csv web:/tmp/data.csv     host -> machine (parents created; mode kept)
  hyperfleet cp web:/var/log/app.log .            machine -> host (into a directory: same name)
  hyperfleet cp web:/etc/os-release -             machine -> stdout
  hyperfleet cp ./site web:/srv                   a directory: into /srv/site when /srv exists,
                                                  else as /srv (Docker's rule); both ways
Bytes are copied as they are, streamed (a file of any size the daemon allows, never held in
memory). Directories travel as tar (the host's tar); symlinks are copied as symlinks.
`,
  async run(args, ctx) {
    const p = parse(args, {});
    if (p.help) return showHelp(cp, ctx);
    if (p.positionals.length !== 2) throw usageError("cp needs a source and a destination");
    const [src, dst] = p.positionals as [string, string];
    const [from, to] = [remoteSpec(src), remoteSpec(dst)];
    if ((from === null) === (to === null)) throw usageError("exactly one of SRC and DST must be in a machine (ID:/path)");
    const hf = ctx.client();
    if (to !== null) return toMachine(hf, src, to);
    return fromMachine(hf, from!, dst, ctx);
  },
};

async function toMachine(hf: HyperfleetClient, src: string, to: { ref: string; path: string }): Promise<number> {
  const st = await localStat(src);
  if (st === null) throw new HyperfleetError("FILE_NOT_FOUND", `${src}: no such file on this host`);
  const m = (await hf.machines.find(to.ref)).unwrap();
  const there = await hf.files.stat(m.id, to.path);
  const intoDir = to.path.endsWith("/") || (there.ok && there.value.type === "directory");
  if (st.isDirectory()) {
    // Into an existing directory: the tree keeps its name; else it becomes the destination.
    const abs = resolve(src);
    const tar = intoDir ? pack(dirname(abs), basename(abs)) : pack(abs, ".");
    const [up] = await Promise.all([hf.files.uploadTar(m.id, to.path, tar.stream), tar.done]);
    up.unwrap();
    return 0;
  }
  const path = intoDir ? posix.join(to.path, basename(src)) : to.path;
  (await hf.files.uploadStream(m.id, path, createReadStream(src), { mode: st.mode & 0o7777 })).unwrap();
  return 0;
}

async function fromMachine(hf: HyperfleetClient, from: { ref: string; path: string }, dst: string, ctx: Ctx): Promise<number> {
  const m = (await hf.machines.find(from.ref)).unwrap();
  const info = (await hf.files.stat(m.id, from.path)).unwrap();
  const local = await localStat(dst);
  const intoDir = local?.isDirectory() === true || dst.endsWith("/");
  if (info.type === "directory") {
    if (dst === "-") throw usageError("a directory cannot go to stdout; name a local directory");
    // The archive's entries start with the remote directory's name: kept when copying into an
    // existing directory, dropped when the destination is the copy itself.
    if (!intoDir) await mkdir(dst, { recursive: true });
    const tar = (await hf.files.downloadTar(m.id, from.path)).unwrap();
    await unpack(tar, dst, intoDir ? 0 : 1);
    return 0;
  }
  const body = (await hf.files.downloadStream(m.id, from.path)).unwrap();
  if (dst === "-") {
    await pipeline(body, ctx.out, { end: false });
    return 0;
  }
  const target = intoDir ? join(dst, posix.basename(from.path)) : dst;
  await pipeline(body, createWriteStream(target, { mode: info.mode & 0o7777 }));
  // The stream's mode applies only to a new file (and the umask filters it): make it what the guest had.
  await chmod(target, info.mode & 0o7777);
  return 0;
}
