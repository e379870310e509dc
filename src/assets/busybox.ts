/**
 * Finds a static busybox for the base root disk: the host's (Debian package busybox-static) if it
 * is static, else Debian's busybox-static fetched with apt into <dataDir>/busybox/<version>/.
 */
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { HyperfleetError } from "../core/errors.js";
import { candidateFields, downloadDeb, extractDeb } from "./apt.js";
import { inspectElf } from "./elf.js";
import { runTool } from "./exec.js";
import { exists, makeWorkDir, publishDir } from "./fs-util.js";

const HOST_CANDIDATES = ["/usr/bin/busybox", "/bin/busybox"];
const PACKAGE = "busybox-static";

/** A static busybox and its applet list. */
export interface Busybox {
  path: string;
  data: Buffer;
  /** Paths from `busybox --list-full`, e.g. "bin/sh". */
  applets: string[];
}

async function readIfStatic(path: string): Promise<Buffer | null> {
  if (!(await exists(path))) return null;
  const data = await readFile(path);
  const elf = inspectElf(data);
  return elf?.x86_64 && elf.isStatic ? data : null;
}

async function fetchFromApt(dataDir: string, signal?: AbortSignal): Promise<string> {
  const fields = await candidateFields(PACKAGE, signal);
  if (fields?.Version === undefined) {
    throw new HyperfleetError("HOST_TOOL_MISSING", `no static busybox found: install it with \`apt-get install ${PACKAGE}\``);
  }
  const dir = join(dataDir, "busybox", fields.Version.replaceAll(":", "_"));
  const bin = join(dir, "bin", "busybox");
  if (await exists(bin)) return bin;
  const work = await makeWorkDir(dataDir, "busybox");
  try {
    const deb = await downloadDeb({ name: PACKAGE, version: fields.Version }, work, signal);
    await extractDeb(deb, join(work, "tree"), signal);
    await publishDir(join(work, "tree"), dir);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return bin;
}

/** Returns a static busybox (host's or fetched) with its applet list. */
export async function findStaticBusybox(dataDir: string, signal?: AbortSignal): Promise<Busybox> {
  let path: string | undefined;
  let data: Buffer | null = null;
  for (const p of HOST_CANDIDATES) {
    data = await readIfStatic(p);
    if (data) {
      path = p;
      break;
    }
  }
  if (path === undefined || data === null) {
    path = await fetchFromApt(dataDir, signal);
    data = await readIfStatic(path);
    if (data === null) throw new HyperfleetError("INTERNAL", `${path} from ${PACKAGE} is not a static x86-64 executable`);
  }
  const { stdout } = await runTool(path, ["--list-full"], { signal });
  const applets = stdout
    .toString("utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "");
  return { path, data, applets };
}
