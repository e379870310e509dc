/**
 * Builds a C fixture from test/fixtures/ with `musl-gcc -static` into a temp dir: the guest has
 * busybox only, so the servers the network tests upload (ws-echo.c, udp-echo.c) bring their own libc.
 */
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const CC = "/usr/bin/musl-gcc";

export function staticFixtureSkipReason(): string | null {
  return existsSync(CC) ? null : `${CC} is not installed (musl-tools)`;
}

export interface Built {
  path: string;
  remove(): Promise<void>;
}

/** `name`: the fixture's base name, e.g. "ws-echo" for test/fixtures/ws-echo.c. */
export async function buildStaticFixture(name: "ws-echo" | "udp-echo" | "http-files"): Promise<Built> {
  const source = fileURLToPath(new URL(`../fixtures/${name}.c`, import.meta.url));
  const dir = await mkdtemp(join(tmpdir(), `hft-${name}-`));
  const path = join(dir, name);
  execFileSync(CC, ["-static", "-O2", "-Wall", "-Wextra", "-Werror", "-std=gnu11", "-o", path, source], { stdio: ["ignore", "ignore", "pipe"] });
  return { path, remove: () => rm(dir, { recursive: true, force: true }) };
}
