/**
 * The stand-in's snapshot files. The vmstate is JSON after an 8-byte magic (so a file we did not
 * write fails the way Firecracker fails on a foreign file: a magic mismatch); the memory file is
 * a sparse file of exactly mem_size_mib MiB, as Firecracker's Full snapshot is. A process cannot
 * carry guest memory, so the memory file holds no state (see README.md).
 */
import { closeSync, ftruncateSync, openSync, readSync, statSync, writeFileSync, fsyncSync } from "node:fs";
import { createFile, loadMemOpen, loadMemSize, loadStateCorrupt, loadStateMagic, loadStateOpen, Fault } from "./faults.js";

/** "HFFCSTD1" little-endian: what Firecracker would read as the snapshot magic. */
export const VMSTATE_MAGIC = Buffer.from("HFFCSTD1", "latin1");
/** A vmstate is a few KiB; anything bigger is not ours (and must not be read whole). */
const MAX_VMSTATE = 1 << 20;

export interface VmState {
  firecracker_version: string;
  machine_config: Record<string, unknown>;
  boot_source: Record<string, unknown> | null;
  drives: Array<Record<string, unknown>>;
  network_interfaces: Array<Record<string, unknown>>;
  vsock: { guest_cid: number; uds_path: string } | null;
  entropy: Record<string, unknown> | null;
  balloon: Record<string, unknown> | null;
  mem_size_mib: number;
}

export function writeSnapshot(statePath: string, memPath: string, state: VmState): void {
  const body = Buffer.concat([VMSTATE_MAGIC, Buffer.from(JSON.stringify(state))]);
  try {
    writeFileSync(statePath, body);
  } catch (e) {
    throw new Fault(createFile("snapshot", "open", e));
  }
  let fd: number;
  try {
    fd = openSync(memPath, "w");
  } catch (e) {
    throw new Fault(createFile("memory", "open", e));
  }
  try {
    ftruncateSync(fd, state.mem_size_mib * 1024 * 1024);
    fsyncSync(fd);
  } catch (e) {
    throw new Fault(createFile("memory", "set_length", e));
  } finally {
    closeSync(fd);
  }
}

/** Reads and checks a vmstate; every failure is Firecracker's (fatal) restore error. */
export function readVmState(statePath: string): VmState {
  let fd: number;
  try {
    fd = openSync(statePath, "r");
  } catch (e) {
    throw new Fault(loadStateOpen(e), 400, true);
  }
  try {
    const size = statSync(statePath).size;
    const buf = Buffer.alloc(Math.min(size, MAX_VMSTATE));
    const n = readSync(fd, buf, 0, buf.length, 0);
    const head = Buffer.alloc(8);
    buf.copy(head, 0, 0, Math.min(8, n));
    if (n < 8 || !head.equals(VMSTATE_MAGIC)) throw new Fault(loadStateMagic(head.readBigUInt64LE(0)), 400, true);
    if (size > MAX_VMSTATE) throw new Fault(loadStateCorrupt(`state of ${size} bytes is larger than any the stand-in writes`), 400, true);
    let state: VmState;
    try {
      state = JSON.parse(buf.subarray(8, n).toString("utf8")) as VmState;
    } catch (e) {
      throw new Fault(loadStateCorrupt(`Bincode error: ${(e as Error).message}`), 400, true);
    }
    if (!state || typeof state.mem_size_mib !== "number" || !Array.isArray(state.drives)) throw new Fault(loadStateCorrupt("Invalid data: incomplete state"), 400, true);
    return state;
  } finally {
    closeSync(fd);
  }
}

/** The memory file must exist and cover the guest's memory (Firecracker mmaps it whole). */
export function checkMemoryFile(memPath: string, memSizeMib: number): void {
  let size: number;
  try {
    closeSync(openSync(memPath, "r"));
    size = statSync(memPath).size;
  } catch (e) {
    throw new Fault(loadMemOpen(e), 400, true);
  }
  const want = memSizeMib * 1024 * 1024;
  if (size < want) throw new Fault(loadMemSize(want, size), 400, true);
}
