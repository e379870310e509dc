/**
 * The agent-gateway image of the workload tests (docs/agents.md): busybox plus the static ws-echo
 * server (test/fixtures/ws-echo.c) as its main process on port 8080, keeping its chat history on
 * /data (a volume) and reporting the size of the API_TOKEN secret file. Built here with umoci, as no
 * public registry is reachable, and pushed to the test's loopback registry.
 */
import { chmod, copyFile, mkdir, rm, symlink } from "node:fs/promises";
import { join } from "node:path";
import { push, sh } from "../images/fixtures.js";
import { buildStaticFixture } from "../network/static-fixture.js";

export const GATEWAY_PORT = 8080;
export const GATEWAY_CONFIG = {
  cmd: ["/usr/local/bin/ws-echo", String(GATEWAY_PORT)],
  env: { PATH: "/usr/local/bin:/usr/bin:/bin", WS_ECHO_STATE: "/data/history", WS_ECHO_SECRET: "/run/secrets/API_TOKEN" },
};

const APPLETS = ["sh", "cat", "head", "kill", "ls", "pidof", "rm", "sort", "touch", "tr"];

/** Builds `<dir>/oci:gateway` and pushes it as `<registry>/agents/gateway:1`; returns that reference. */
export async function pushGatewayImage(dir: string, registry: string): Promise<string> {
  const built = await buildStaticFixture("ws-echo");
  try {
    const layout = join(dir, "oci");
    await sh("umoci", ["init", "--layout", layout]);
    await sh("umoci", ["new", "--image", `${layout}:gateway`]);
    const bundle = join(dir, "bundle");
    await sh("umoci", ["unpack", "--image", `${layout}:gateway`, bundle]);
    const root = join(bundle, "rootfs");
    await mkdir(join(root, "bin"), { recursive: true });
    await mkdir(join(root, "usr/local/bin"), { recursive: true });
    await mkdir(join(root, "data"), { recursive: true });
    await copyFile("/bin/busybox", join(root, "bin/busybox"));
    await chmod(join(root, "bin/busybox"), 0o755);
    // The applets the tests and the restart policy's kill use; busybox picks by argv[0].
    for (const applet of APPLETS) await symlink("busybox", join(root, "bin", applet));
    await copyFile(built.path, join(root, "usr/local/bin/ws-echo"));
    await chmod(join(root, "usr/local/bin/ws-echo"), 0o755);
    await sh("umoci", ["repack", "--image", `${layout}:gateway`, bundle]);
    await rm(bundle, { recursive: true, force: true });
    const c = GATEWAY_CONFIG;
    await sh("umoci", [
      "config",
      "--image",
      `${layout}:gateway`,
      ...c.cmd.flatMap((a) => ["--config.cmd", a]),
      ...Object.entries(c.env).flatMap(([k, v]) => ["--config.env", `${k}=${v}`]),
      "--config.exposedports",
      `${GATEWAY_PORT}/tcp`,
    ]);
    const ref = `${registry}/agents/gateway:1`;
    await push(layout, "gateway", ref);
    return ref;
  } finally {
    await built.remove();
  }
}
