import { stat, readFile, writeFile, chmod } from "node:fs/promises";
import { basename, join, posix } from "node:path";
import { HyperfleetError } from "../../core/errors.js";
import { parse, usageError } from "../args.js";
import { showHelp, type Command } from "../command.js";

/** `ID:/path` or `NAME:/path` (Docker's form); a local path with a ':' is written `./a:b`. */
export function remoteSpec(arg: string): { ref: string; path: string } | null {
  const m = /^([A-Za-z0-9][A-Za-z0-9._-]*):(.*)$/.exec(arg);
  if (!m) return null;
  if (!m[2]!.startsWith("/")) throw usageError(`${arg}: the path in the machine must be absolute (${m[1]}:/tmp/file)`);
  return { ref: m[1]!, path: m[2]! };
}

function noDirectories(what: string): HyperfleetError {
  return new HyperfleetError("NOT_SUPPORTED_YET", `${what} is a directory; copying directories is not supported yet (the API moves single files): tar it first, copy the archive, and untar it with 'hyperfleet exec'`);
}

const localStat = (p: string) => stat(p).catch(() => null);

export const cp: Command = {
  name: "cp",
  summary: "copy a file between the host and a machine",
  help: `usage: hyperfleet cp SRC DST

Copy a file into or out of a running machine; one side is ID:/path (or NAME:/path).
  hyperfleet cp ./data.csv web:/tmp/data.csv     host -> machine (parents created; mode kept)
  hyperfleet cp web:/var/log/app.log .            machine -> host (into a directory: same name)
  hyperfleet cp web:/etc/os-release -             machine -> stdout
Bytes are copied as they are. Directories are not supported yet.
`,
  async run(args, ctx) {
    const p = parse(args, {});
    if (p.help) return showHelp(cp, ctx);
    if (p.positionals.length !== 2) throw usageError("cp needs a source and a destination");
    const [src, dst] = p.positionals as [string, string];
    const [from, to] = [remoteSpec(src), remoteSpec(dst)];
    if ((from === null) === (to === null)) throw usageError("exactly one of SRC and DST must be in a machine (ID:/path)");
    const hf = ctx.client();
    if (to !== null) {
      const st = await localStat(src);
      if (st === null) throw new HyperfleetError("FILE_NOT_FOUND", `${src}: no such file on this host`);
      if (st.isDirectory()) throw noDirectories(src);
      const m = (await hf.machines.find(to.ref)).unwrap();
      let path = to.path;
      if (path.endsWith("/")) path = posix.join(path, basename(src));
      else {
        const there = await hf.files.stat(m.id, path);
        if (there.ok && there.value.type === "directory") path = posix.join(path, basename(src));
      }
      (await hf.files.upload(m.id, path, await readFile(src), { mode: st.mode & 0o7777 })).unwrap();
      return 0;
    }
    const m = (await hf.machines.find(from!.ref)).unwrap();
    const info = (await hf.files.stat(m.id, from!.path)).unwrap();
    if (info.type === "directory") throw noDirectories(src);
    const data = (await hf.files.download(m.id, from!.path, { maxBytes: 1024 * 1024 * 1024 })).unwrap();
    if (dst === "-") {
      ctx.out.write(data);
      return 0;
    }
    const local = await localStat(dst);
    const target = local?.isDirectory() === true || dst.endsWith("/") ? join(dst, posix.basename(from!.path)) : dst;
    await writeFile(target, data, { mode: info.mode & 0o7777 });
    // writeFile's mode applies only to a new file (and the umask filters it): make it what the guest had.
    await chmod(target, info.mode & 0o7777);
    return 0;
  },
};
