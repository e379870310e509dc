/**
 * QEMU adapter of the VMM driver port. Spawns qemu-system-x86_64 in its own session so VMs outlive
 * the daemon, records what is needed to adopt them later (meta.json + pidfile), and controls them
 * over QMP. The command line comes from the pure builder in argv.ts.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, open, readFile, rm, writeFile, rename } from "node:fs/promises";
import { join } from "node:path";
import { HyperfleetError } from "../../core/errors.js";
import type { VmHandle, VmmDriver, VmSpec } from "../../core/ports/vmm-driver.js";
import { type Accel, buildQemuArgv, type QemuPaths } from "./argv.js";
import { QemuHandle } from "./handle.js";
import { isOurProcess, sleep } from "../process.js";

export interface QemuDriverOptions {
  accel: Accel;
  qemuBinary?: string;
  tbSizeMib?: number;
}

interface Meta {
  id: string;
  pid: number;
  accel: Accel;
  startedAt: string;
  argv: string[];
}

export function qemuPaths(runDir: string): QemuPaths & { metaFile: string; stderrLog: string } {
  return {
    qmpSocket: join(runDir, "qmp.sock"),
    agentSocket: join(runDir, "agent.sock"),
    consoleLog: join(runDir, "console.log"),
    pidFile: join(runDir, "qemu.pid"),
    metaFile: join(runDir, "meta.json"),
    stderrLog: join(runDir, "qemu.log"),
  };
}

export class QemuDriver implements VmmDriver {
  readonly kind = "qemu" as const;
  private readonly bin: string;

  constructor(private readonly opts: QemuDriverOptions) {
    this.bin = opts.qemuBinary ?? "qemu-system-x86_64";
  }

  get accel(): Accel {
    return this.opts.accel;
  }

  async start(spec: VmSpec, signal?: AbortSignal): Promise<VmHandle> {
    const paths = qemuPaths(spec.runDir);
    await mkdir(spec.runDir, { recursive: true, mode: 0o700 });
    // Sockets left by an earlier run of the same VM would make QEMU fail to bind.
    for (const p of [paths.qmpSocket, paths.agentSocket, paths.pidFile]) await rm(p, { force: true });
    if (paths.qmpSocket.length > 107) throw new HyperfleetError("INVALID_ARGUMENT", `runDir ${spec.runDir} is too long for UNIX sockets (max ~96 chars)`, { details: { field: "runDir" } });

    const argv = buildQemuArgv({ spec, accel: this.opts.accel, paths, tbSizeMib: this.opts.tbSizeMib });
    const log = await open(paths.stderrLog, "w");
    const child = spawn(this.bin, argv, { detached: true, stdio: ["ignore", log.fd, log.fd] });
    // Listen before any await: 'spawn' fires on the next tick and would be missed.
    const spawned = new Promise<number>((resolve, reject) => {
      child.once("spawn", () => resolve(child.pid!));
      child.once("error", (e: NodeJS.ErrnoException) =>
        reject(e.code === "ENOENT"
          ? new HyperfleetError("HOST_TOOL_MISSING", `${this.bin} not found: run \`npm run setup\` to install qemu-system-x86`, { cause: e })
          : new HyperfleetError("VMM_SPAWN_FAILED", `cannot start ${this.bin}: ${e.message}`, { cause: e })),
      );
    });
    await log.close();
    const pid = await spawned;
    // Not unref()ed: awaiting the exit of a VMM that died early must keep the event loop alive.
    // Surviving the parent comes from `detached` (own session) and stdio on files, not from unref.
    const handle = new QemuHandle(spec.id, pid, spec.runDir, paths, child);
    try {
      await this.waitForSockets(paths, handle, signal);
      await handle.attachQmp(5_000);
      const meta: Meta = { id: spec.id, pid, accel: this.opts.accel, startedAt: new Date().toISOString(), argv: [this.bin, ...argv] };
      await writeFile(paths.metaFile + ".tmp", JSON.stringify(meta, null, 2));
      await rename(paths.metaFile + ".tmp", paths.metaFile);
      return handle;
    } catch (e) {
      await handle.kill().catch(() => undefined);
      await handle.cleanup();
      throw e;
    }
  }

  async adopt(id: string, runDir: string): Promise<VmHandle | null> {
    const paths = qemuPaths(runDir);
    let meta: Meta;
    try {
      meta = JSON.parse(await readFile(paths.metaFile, "utf8")) as Meta;
    } catch {
      return null;
    }
    if (meta.id !== id || !(await isOurProcess(meta.pid, `hf-${id}`))) return null;
    const handle = new QemuHandle(id, meta.pid, runDir, paths, null);
    try {
      await handle.attachQmp(5_000);
    } catch {
      // The process exists but QMP does not answer: treat it as ours but uncontrollable; kill it.
      await handle.kill().catch(() => undefined);
      return null;
    }
    return handle;
  }

  private async waitForSockets(paths: QemuPaths & { stderrLog: string }, handle: QemuHandle, signal?: AbortSignal): Promise<void> {
    const deadline = Date.now() + 10_000;
    let exited = false;
    void handle.exited().then(() => (exited = true));
    while (!(existsSync(paths.qmpSocket) && existsSync(paths.agentSocket))) {
      if (exited) {
        const log = await readFile(paths.stderrLog, "utf8").catch(() => "");
        throw new HyperfleetError("VMM_SPAWN_FAILED", `QEMU exited during startup: ${log.trim().slice(-800) || "no output"}`);
      }
      if (signal?.aborted) throw new HyperfleetError("VMM_SPAWN_FAILED", "VM start aborted");
      if (Date.now() > deadline) throw new HyperfleetError("VM_START_TIMEOUT", "QEMU did not create its control sockets within 10 s");
      await sleep(2);
    }
  }
}
