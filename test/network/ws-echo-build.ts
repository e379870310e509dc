/**
 * Builds test/fixtures/ws-echo.c with `musl-gcc -static` into a temp dir: the guest has busybox
 * only, so the echo server the WebSocket tests upload must bring its own libc.
 */
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const SOURCE = fileURLToPath(new URL("../fixtures/ws-echo.c", import.meta.url));
const CC = "/usr/bin/musl-gcc";

export function wsEchoSkipReason(): string | null {
  return existsSync(CC) ? null : `${CC} is not installed (musl-tools)`;
}

export interface Built {
  path: string;
  remove(): Promise<void>;
}

export async function buildWsEcho(): Promise<Built> {
  const dir = await mkdtemp(join(tmpdir(), "hft-ws-echo-"));
  const path = join(dir, "ws-echo");
  execFileSync(CC, ["-static", "-O2", "-Wall", "-Wextra", "-Werror", "-std=gnu11", "-o", path, SOURCE], { stdio: ["ignore", "ignore", "pipe"] });
  return { path, remove: () => rm(dir, { recursive: true, force: true }) };
}
