/**
 * Builds <dataDir>/initramfs/<release>-<hash>.cpio: hf-init as /init plus the virtio modules it
 * may load and the list saying which to load on which devices. Content-hashed, so an unchanged
 * build is skipped and old VMs keep their file.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { HyperfleetError } from "../core/errors.js";
import { writeCpio } from "./cpio.js";
import { runTool } from "./exec.js";
import { exists, sha256Hex, writeFileAtomic } from "./fs-util.js";
import { initramfsTree, planModuleList, type InitramfsModule, type ModuleListEntry } from "./initramfs-layout.js";
import type { GuestKernel } from "./kernel.js";
import { readStaticBinary } from "./static-binary.js";
import { DEFAULT_GUEST_DRIVERS, moduleCompression, moduleName, parseModulesBuiltin, parseModulesDep, stripModuleSignature, type GuestDriver } from "./modules.js";

/** Options of buildInitramfs. */
export interface BuildInitramfsOptions {
  /** Directory the .cpio is written to. */
  outDir: string;
  kernel: Pick<GuestKernel, "release" | "modulesDir">;
  /** Path of the static hf-init binary. */
  initBinary: string;
  /**
   * Drivers to include with their dependencies, each loaded only for its devices (default
   * DEFAULT_GUEST_DRIVERS when `modules` is not given either).
   */
  drivers?: readonly GuestDriver[];
  /** Module names to include with their dependencies and load unconditionally, before `drivers`. */
  modules?: readonly string[];
  signal?: AbortSignal;
}

/** The built initramfs. */
export interface BuiltInitramfs {
  path: string;
  /** Names of the modules included, in module-list order. */
  modules: string[];
  /** True if this call wrote the file (false: an identical one was already there). */
  created: boolean;
}

/** The module file as finit_module needs it: the kernel we ship has no in-kernel decompression. */
async function loadModule(path: string, signal?: AbortSignal): Promise<Uint8Array> {
  const kind = moduleCompression(path);
  let raw: Uint8Array;
  if (kind === "none") raw = await readFile(path);
  else if (kind === "gz") raw = gunzipSync(await readFile(path));
  else raw = (await runTool(kind === "xz" ? "xz" : "zstd", ["-dcq", path], { signal })).stdout;
  return stripModuleSignature(raw);
}

/** Builds (or finds) the initramfs for this kernel and hf-init binary. */
export async function buildInitramfs(opts: BuildInitramfsOptions): Promise<BuiltInitramfs> {
  const { release, modulesDir } = opts.kernel;
  const init = await readStaticBinary(opts.initBinary, "hf-init", "build it with `make -C guest`");
  const depText = await readFile(join(modulesDir, "modules.dep"), "utf8").catch((e: unknown) => {
    throw new HyperfleetError("GUEST_ASSETS_MISSING", `no modules.dep in ${modulesDir}: run \`npm run setup\` again`, { cause: e });
  });
  const builtinPath = join(modulesDir, "modules.builtin");
  const builtin = (await exists(builtinPath)) ? parseModulesBuiltin(await readFile(builtinPath, "utf8")) : new Set<string>();
  const drivers: GuestDriver[] = [
    ...(opts.modules ?? []).map((module): GuestDriver => ({ module, when: { kind: "always" } })),
    ...(opts.drivers ?? (opts.modules ? [] : DEFAULT_GUEST_DRIVERS)),
  ];
  const plan = planModuleList(parseModulesDep(depText), drivers, builtin);
  // The initramfs holds modules uncompressed, so their paths lose the compression suffix.
  const uncompressed = (rel: string): string => rel.replace(/\.(xz|zst|gz)$/, "");
  const moduleList = plan.map((e): ModuleListEntry => ({ ...e, path: uncompressed(e.path) }));
  const files = [...new Set(plan.map((e) => e.path))];

  const modules: InitramfsModule[] = [];
  for (const rel of files) modules.push({ path: uncompressed(rel), data: await loadModule(join(modulesDir, rel), opts.signal) });
  const cpio = writeCpio(initramfsTree({ init, kernelRelease: release, modules, moduleList }));
  const path = join(opts.outDir, `${release}-${sha256Hex(cpio).slice(0, 16)}.cpio`);
  const created = !(await exists(path));
  if (created) await writeFileAtomic(path, cpio);
  return { path, modules: files.map(moduleName), created };
}
