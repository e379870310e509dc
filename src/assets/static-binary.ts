/**
 * Reading the static binaries we put into guests (hf-init, hf-agent), with a clear error when one
 * is missing or would not run there (dynamically linked, wrong architecture).
 */
import { readFile } from "node:fs/promises";
import { HyperfleetError } from "../core/errors.js";
import { inspectElf } from "./elf.js";

/** Reads a static x86-64 executable, or explains why it cannot go into a guest. */
export async function readStaticBinary(path: string, what: string, hint: string): Promise<Buffer> {
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch (e) {
    throw new HyperfleetError("GUEST_ASSETS_MISSING", `${what} ${path} is missing: ${hint}`, { cause: e });
  }
  const elf = inspectElf(data);
  if (elf === null || !elf.x86_64 || !elf.isStatic) {
    throw new HyperfleetError("INVALID_ARGUMENT", `${what} ${path} is not a static x86-64 ELF executable: ${hint}`);
  }
  return data;
}
