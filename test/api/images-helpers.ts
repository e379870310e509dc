/**
 * Helpers of the image API tests: a test daemon that also listens on loopback (log following
 * needs a real socket; inject() waits for the whole body) and captures its JSON log lines through
 * the daemon's own logger (with its redaction), plus polling and secret-scanning helpers. The
 * registry and the test images come from test/images (used as they are).
 */
import { readdir, readFile, rm, stat } from "node:fs/promises";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { LightMyRequestResponse } from "fastify";
import { UNDECLARED_CODE } from "../../src/api/errors.js";
import { loadConfig } from "../../src/config/config.js";
import { startDaemon, type Daemon } from "../../src/daemon/daemon.js";
import { createLogger } from "../../src/daemon/logger.js";
import { assertAllCodesDeclared, AUTH, deleteMachinesAndClose, json, killLeftoverVmms, testEnv, until } from "./helpers.js";
import { buildBusyboxLayout, push, workDir } from "../images/fixtures.js";
import { startRegistry, type TestRegistry } from "../images/registry.js";

export interface ImageDaemon {
  daemon: Daemon;
  dataDir: string;
  url: string;
  /** Every log line so far (JSON, one per line). */
  logs(): string;
  req(method: string, url: string, body?: unknown): Promise<LightMyRequestResponse>;
  /** Deletes every machine, closes the daemon; removes the data dir unless `keepDataDir`. */
  close(opts?: { keepDataDir?: boolean }): Promise<void>;
}

export async function startImageDaemon(extra: Record<string, string> = {}, opts: { dataDir?: string } = {}): Promise<ImageDaemon> {
  const dataDir = opts.dataDir ?? (await mkdtemp(join(tmpdir(), "hf-apiimg-")));
  const config = loadConfig(testEnv(dataDir, { PORT: "0", HOST: "127.0.0.1", ...extra })).unwrap();
  const lines: string[] = [];
  const logger = createLogger("debug", { write: (s: string) => void lines.push(s) });
  const daemon = await startDaemon(config, { logger });
  const req: ImageDaemon["req"] = (method, url, body) =>
    daemon.app.inject({
      method: method as "GET",
      url,
      headers: { ...AUTH, ...(body !== undefined && { "content-type": "application/json" }) },
      ...(body !== undefined && { payload: JSON.stringify(body) }),
    });
  return {
    daemon,
    dataDir,
    url: daemon.url ?? "",
    logs: () => lines.join(""),
    req,
    async close(o = {}) {
      await deleteMachinesAndClose(daemon);
      killLeftoverVmms(dataDir);
      if (!o.keepDataDir) await rm(dataDir, { recursive: true, force: true });
      assertAllCodesDeclared(lines.filter((l) => l.includes(UNDECLARED_CODE)));
    },
  };
}

/** The JSON body of an inject() response: the lifecycle helpers' `json`, under the name these tests use. */
export const body = json;

/** The machine fields these tests read. */
export interface MachineJson {
  id: string;
  name: string;
  status: string;
  image_ref: string | null;
  image_digest: string | null;
  rootfs_path: string | null;
  last_error: { code: string; message: string } | null;
  image_pull: { status: string; phase: string; layers_done: number; layers_total: number; bytes_done: number; bytes_total: number; error: { code: string; message: string } | null } | null;
  main_process: { status: string; pid: number | null; exit_code: number | null; signal: number | null; error: { code: string } | null } | null;
}

export interface ImageJson {
  refs: string[];
  digest: string;
  size_bytes: number;
  in_use: boolean;
  config: { cmd: string[]; env: Record<string, string>; working_dir: string | null; user: string | null };
}

/** GET /machines/:id until `pred` holds. */
export function machineWhen(d: ImageDaemon, id: string, pred: (m: MachineJson) => boolean, ms: number, what: string): Promise<MachineJson> {
  return until(async () => {
    const m = body<MachineJson>(await d.req("GET", `/machines/${id}`));
    return pred(m) ? m : null;
  }, ms, what);
}

/** /wait for `status`, repeated past the API's 30 s maximum (an image pull may come first). */
export async function waitStatus(d: ImageDaemon, id: string, status: string, ms: number): Promise<MachineJson> {
  const deadline = Date.now() + ms;
  for (;;) {
    const r = await d.req("GET", `/machines/${id}/wait?status=${status}&timeout=30`);
    if (r.statusCode === 200) return body<MachineJson>(r);
    if (r.statusCode !== 408 || Date.now() > deadline) throw new Error(`waiting for ${id} to be ${status}: ${r.statusCode} ${r.body}`);
  }
}

/** POST /machines/:id/exec with no overrides unless given; returns the parsed answer. */
export async function exec(d: ImageDaemon, id: string, command: string[], extra: Record<string, unknown> = {}): Promise<{ exit_code: number | null; stdout: string; stderr: string }> {
  const r = await d.req("POST", `/machines/${id}/exec`, { command, ...extra });
  if (r.statusCode !== 200) throw new Error(`exec ${command.join(" ")}: ${r.statusCode} ${r.body}`);
  return body(r);
}

/** Every file under `dir` (recursively) whose bytes contain any of `needles`. */
export async function filesContaining(dir: string, needles: readonly string[]): Promise<string[]> {
  const hits: string[] = [];
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const p = join(dir, name);
    const st = await stat(p).catch(() => null);
    if (st?.isDirectory()) hits.push(...(await filesContaining(p, needles)));
    else if (st?.isFile()) {
      const data = await readFile(p);
      if (needles.some((n) => data.includes(n))) hits.push(p);
    }
  }
  return hits;
}

/** A loopback registry holding the busybox test image, and an image daemon allowed to pull from it. */
export interface BusyboxDaemon {
  d: ImageDaemon;
  registry: TestRegistry;
  /** The test image's reference (`<registry>/test/busybox:1`). */
  busybox: string;
  /** Ends the daemon, the registry and the image's build dir. */
  close(): Promise<void>;
}

/** What several API, SDK and CLI tests start with; `extra` is more daemon environment. */
export async function startBusyboxDaemon(extra: Record<string, string> = {}): Promise<BusyboxDaemon> {
  const registry = await startRegistry();
  const fixtures = await workDir();
  const dropFixtures = async () => {
    await registry.stop();
    await rm(fixtures, { recursive: true, force: true });
  };
  try {
    const busybox = `${registry.host}/test/busybox:1`;
    await push(await buildBusyboxLayout(fixtures), "bb", busybox);
    const d = await startImageDaemon({ HYPERFLEET_INSECURE_REGISTRIES: registry.host, ...extra });
    return {
      d,
      registry,
      busybox,
      close: async () => {
        await d.close();
        await dropFixtures();
      },
    };
  } catch (e) {
    await dropFixtures();
    throw e;
  }
}
