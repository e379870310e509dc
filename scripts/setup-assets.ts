/**
 * Builds the guest binaries and the guest boot assets (kernel, initramfs, base root disk) into the
 * data directory. Safe to re-run: only what changed is rebuilt.
 *
 *   HYPERFLEET_DATA_DIR=/var/lib/hyperfleet node --import tsx scripts/setup-assets.ts
 */
import { spawn } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ensureGuestAssets } from "../src/assets/index.js";
import { HyperfleetError, isHyperfleetError } from "../src/core/errors.js";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const guestDir = join(repoRoot, "guest");
const dataDir = resolve(process.env.HYPERFLEET_DATA_DIR ?? "/var/lib/hyperfleet");

const say = (msg: string): void => console.log(`setup-assets: ${msg}`);

/** Runs `make -C guest`, its output going to ours. */
function makeGuest(signal: AbortSignal): Promise<void> {
  return new Promise((ok, fail) => {
    const child = spawn("make", ["-C", guestDir], { stdio: ["ignore", "inherit", "inherit"], signal });
    child.on("error", (e: NodeJS.ErrnoException) =>
      fail(e.code === "ENOENT" ? new HyperfleetError("HOST_TOOL_MISSING", "make not found: install it with `apt-get install make`", { cause: e }) : e),
    );
    child.on("close", (code) =>
      code === 0 ? ok() : fail(new HyperfleetError("INTERNAL", `make -C ${guestDir} failed (exit code ${code}): fix the guest build first`)),
    );
  });
}

async function main(): Promise<void> {
  const ac = new AbortController();
  process.once("SIGINT", () => ac.abort());
  process.once("SIGTERM", () => ac.abort());
  const t0 = Date.now();

  say(`building guest binaries (make -C ${guestDir})`);
  await makeGuest(ac.signal);

  say(`guest assets in ${dataDir}`);
  const assets = await ensureGuestAssets({
    dataDir,
    initBinary: join(guestDir, "build", "hf-init"),
    agentBinary: join(guestDir, "build", "hf-agent"),
    vsockPipeBinary: join(guestDir, "build", "hf-vsock-pipe"),
    log: say,
    signal: ac.signal,
  });

  say(`done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  console.log(
    [
      `  kernel     ${assets.kernelVersion} (${assets.kernelPackage.name}=${assets.kernelPackage.version})`,
      `  vmlinux    ${assets.vmlinux}`,
      `  bzImage    ${assets.bzImage}`,
      `  initramfs  ${assets.initramfs}`,
      `  rootfs     ${assets.rootfs}`,
      `  modules    ${assets.modules.join(" ")}`,
      `  manifest   ${join(dataDir, "assets.json")}`,
    ].join("\n"),
  );
}

main().catch((e: unknown) => {
  const code = isHyperfleetError(e) ? e.code : "INTERNAL";
  console.error(`setup-assets: error [${code}]: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});
