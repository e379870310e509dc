/**
 * QEMU snapshots as migrations to and from files (docs/adr/0009). QEMU 7.2 has no `file:` URI, so
 * the stream goes through `exec:cat`. A clone snapshot sets `x-ignore-shared`: the shared memfd RAM
 * stays out of the stream (about 60 KB of device state) and is copied from the memfd itself; a
 * suspend is a classic stream with the RAM in it.
 */
import { execFile } from "node:child_process";
import { open, readdir, readlink } from "node:fs/promises";
import { promisify } from "node:util";
import { HyperfleetError, toHyperfleetError } from "../../core/errors.js";
import { sleep } from "../../host/async.js";
import type { QmpClient } from "./qmp.js";

const run = promisify(execFile);

/** A migration to or from a file is local I/O: 256 MiB streams in about a second under load. */
export const MIGRATION_TIMEOUT_MS = 120_000;
/** query-migrate while one runs: device state alone takes a few milliseconds. */
const POLL_MS = 2;
/** Bytes per second (1 TiB/s: "unlimited"; not `1 << 40`, which is 256 in JavaScript). QEMU 7.2
 * defaults to 32 MiB/s, meant for a network: a 256 MiB suspend took 2.2 s instead of 0.25 s. */
const UNLIMITED_BANDWIDTH = 2 ** 40;

interface MigrationInfo {
  status?: string;
  "error-desc"?: string;
}

/** `'...'` for /bin/sh: the exec: URI runs through it. */
export function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

export async function setIgnoreShared(qmp: QmpClient, on: boolean): Promise<void> {
  await qmp.execute("migrate-set-capabilities", { capabilities: [{ capability: "x-ignore-shared", state: on }] });
}

/** Streams the VM's state into `file` and resolves once QEMU says completed; SNAPSHOT_FAILED with QEMU's words otherwise. */
export async function migrateToFile(qmp: QmpClient, file: string): Promise<void> {
  await qmp.execute("migrate-set-parameters", { "max-bandwidth": UNLIMITED_BANDWIDTH });
  await qmp.execute("migrate", { uri: `exec:cat > ${shellQuote(file)}` });
  await waitMigration(qmp, "saving the VM state");
}

/**
 * Loads `file` into a QEMU started with `-incoming defer`; resolves once the migration completed.
 * `ignoreShared`: the stream was written with x-ignore-shared (a clone snapshot), set in the same
 * write as the migrate-incoming (QMP answers in order: one round trip, not two).
 */
export async function migrateFromFile(qmp: QmpClient, file: string, opts: { ignoreShared?: boolean } = {}): Promise<void> {
  await Promise.all([
    ...(opts.ignoreShared ? [setIgnoreShared(qmp, true)] : []),
    qmp.execute("migrate-incoming", { uri: `exec:cat ${shellQuote(file)}` }),
  ]);
  await waitMigration(qmp, "loading the VM state");
}

async function waitMigration(qmp: QmpClient, what: string): Promise<void> {
  const deadline = Date.now() + MIGRATION_TIMEOUT_MS;
  for (;;) {
    const info = await qmp.execute<MigrationInfo>("query-migrate");
    if (info.status === "completed") return;
    if (info.status === "failed" || info.status === "cancelled") {
      throw new HyperfleetError("SNAPSHOT_FAILED", `${what} failed: QEMU says ${info["error-desc"] ?? info.status}`);
    }
    if (Date.now() > deadline) {
      await qmp.execute("migrate_cancel").catch(() => undefined);
      throw new HyperfleetError("SNAPSHOT_FAILED", `${what} did not finish within ${MIGRATION_TIMEOUT_MS} ms (QEMU status ${info.status ?? "none"})`);
    }
    await sleep(POLL_MS);
  }
}

/**
 * The memfd holding the guest RAM of QEMU `pid` (`memory-backend-memfd` names its memfd after its
 * type), as a path any process of ours can open: `/proc/<pid>/fd/<n>`. Needs the rights to read
 * another process's fds (root, as the daemon runs).
 */
export async function guestMemfdPath(pid: number): Promise<string> {
  const dir = `/proc/${pid}/fd`;
  let found: string | null = null;
  for (const fd of await readdir(dir)) {
    const target = await readlink(`${dir}/${fd}`).catch(() => "");
    if (!target.startsWith("/memfd:memory-backend-memfd")) continue;
    if (found !== null) throw new HyperfleetError("SNAPSHOT_FAILED", `QEMU pid ${pid} has more than one RAM memfd; cannot tell which is the guest's`);
    found = `${dir}/${fd}`;
  }
  if (found === null) throw new HyperfleetError("SNAPSHOT_FAILED", `QEMU pid ${pid} has no RAM memfd (a VM booted before memfd RAM, or restored from a clone snapshot)`);
  return found;
}

/**
 * Copies `src` to `dst` keeping holes: coreutils' cp skips the holes of a sparse source (SEEK_DATA)
 * and `--sparse=always` also leaves runs of zeroes unwritten. Measured against plain copies in
 * docs/adr/0009.
 */
/** Makes `file` durable (fdatasync): a suspend must survive a host crash once its VMM is gone. */
export async function syncFile(file: string): Promise<void> {
  const fh = await open(file, "r");
  try {
    await fh.datasync();
  } finally {
    await fh.close();
  }
}

export async function sparseCopy(src: string, dst: string): Promise<void> {
  try {
    await run("cp", ["--sparse=always", src, dst]);
  } catch (e) {
    const err = e as { stderr?: string };
    throw new HyperfleetError("SNAPSHOT_FAILED", `copying ${src} to ${dst} failed: ${err.stderr?.trim() || toHyperfleetError(e, "SNAPSHOT_FAILED").message}`, { cause: e });
  }
}
