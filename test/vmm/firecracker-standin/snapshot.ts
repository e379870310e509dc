/**
 * The stand-in's snapshot files. The vmstate is JSON after an 8-byte magic (so a file we did not
 * write fails the way Firecracker fails on a foreign file: a magic mismatch); the memory file is
 * exactly mem_size_mib MiB, sparse, as Firecracker's Full snapshot is. A process has no guest
 * memory to save; what it has that lives in RAM is the guest's tmpfs /tmp, so the memory file
 * starts with a tar of it and a restore puts it back (README.md says what is not carried).
 */
import { spawnSync } from "node:child_process";
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
  /** Bytes of the tar of the guest's /tmp at the start of the memory file (0: none). */
  tmp_tar_bytes: number;
}

/** The guest's /tmp as its init sees it (its own mount namespace). */
const guestTmp = (initPid: number) => `/proc/${initPid}/root/tmp`;

/**
 * Writes the memory file (the guest's /tmp as a tar, then zeros up to the memory size) and the
 * vmstate. The guest is paused, so /tmp does not change under tar.
 */
export function writeSnapshot(statePath: string, memPath: string, state: Omit<VmState, "tmp_tar_bytes">, initPid: number | undefined): void {
  const memBytes = state.mem_size_mib * 1024 * 1024;
  let tarBytes = 0;
  if (initPid !== undefined) {
    const r = spawnSync("tar", ["-C", guestTmp(initPid), "-cf", memPath, "."], { encoding: "utf8", maxBuffer: 1 << 16 });
    if (r.status !== 0) throw new Fault(`Create snapshot error: Cannot write memory file: tar of the guest's /tmp failed: ${(r.stderr || r.error?.message || "").trim()}`);
    tarBytes = statSync(memPath).size;
    if (tarBytes > memBytes) throw new Fault(`Create snapshot error: Cannot write memory file: the guest's /tmp (${tarBytes} bytes) does not fit in its ${state.mem_size_mib} MiB of memory`);
  }
  let fd: number;
  try {
    fd = openSync(memPath, initPid !== undefined ? "r+" : "w");
  } catch (e) {
    throw new Fault(createFile("memory", "open", e));
  }
  try {
    ftruncateSync(fd, memBytes);
    fsyncSync(fd);
  } catch (e) {
    throw new Fault(createFile("memory", "set_length", e));
  } finally {
    closeSync(fd);
  }
  try {
    writeFileSync(statePath, Buffer.concat([VMSTATE_MAGIC, Buffer.from(JSON.stringify({ ...state, tmp_tar_bytes: tarBytes }))]));
  } catch (e) {
    throw new Fault(createFile("snapshot", "open", e));
  }
}

/** Puts the saved /tmp back into a freshly started guest (its agent has mounted /tmp already). */
export function restoreGuestTmp(initPid: number, memPath: string, state: VmState): void {
  if (!state.tmp_tar_bytes) return;
  // tar stops at the archive's end marker, before the zeros that pad the file to memory size.
  const r = spawnSync("tar", ["-C", guestTmp(initPid), "-xf", memPath], { encoding: "utf8", maxBuffer: 1 << 16 });
  if (r.status !== 0) throw new Fault(`Load snapshot error: Failed to restore from snapshot: Failed to load guest memory: tar: ${(r.stderr || r.error?.message || "").trim()}`, 400, true);
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
