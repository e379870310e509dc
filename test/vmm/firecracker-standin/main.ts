/**
 * Entry of the Firecracker stand-in (see README.md): plays the `firecracker` process for the
 * driver's tests, where no Firecracker and no KVM can run. Reads the environment here only:
 * FC_STANDIN_LOG (JSON lines of every request and answer) and HF_AGENT_BIN (the guest agent).
 */
import { appendFileSync, closeSync, constants, existsSync, openSync } from "node:fs";
import { resolve } from "node:path";
import { FirecrackerContract } from "../../../src/vmm/firecracker/spec.js";
import { createApiServer } from "./api.js";
import { ArgError, argErrorText, EXIT_ARG_PARSING, FC_VERSION, parseArgs } from "./cli.js";
import { guestDirFor, StandinVm } from "./vm.js";

const ROOT = resolve(import.meta.dirname, "../../..");
const SPEC = resolve(ROOT, "specs/firecracker/firecracker.yaml");
/** The static build: it runs as PID 1 of the guest's namespaces, like in an image. */
const AGENT_BIN = process.env.HF_AGENT_BIN ? resolve(process.env.HF_AGENT_BIN) : resolve(ROOT, "guest/build/hf-agent");
const REQUEST_LOG = process.env.FC_STANDIN_LOG;

function fail(msg: string, code: number): never {
  process.stderr.write(msg);
  process.exit(code);
}

function main(): void {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    if (e instanceof ArgError) fail(argErrorText(e), EXIT_ARG_PARSING);
    throw e;
  }
  if (args.help) {
    process.stdout.write("Firecracker stand-in (test support): --api-sock PATH [--id ID] [--log-path PATH] [--level LEVEL] [--no-seccomp] [--boot-timer] [--version]\n");
    return;
  }
  if (args.version) {
    process.stdout.write(`Firecracker v${FC_VERSION}\n`);
    return;
  }
  if (args.unsupported.length > 0) fail(`The Firecracker stand-in does not play --${args.unsupported.join(", --")}\n`, 1);
  if (args.logPath) {
    try {
      closeSync(openSync(args.logPath, constants.O_RDWR | constants.O_APPEND | constants.O_NONBLOCK));
    } catch (e) {
      fail(`Logger error: Failed to open target file: ${(e as Error).message}\n`, 1);
    }
  }
  // Firecracker binds without unlinking: a leftover socket file is "already used".
  if (existsSync(args.apiSock)) fail(`Failed to open the API socket at: ${args.apiSock}. Check that it is not already used.\n`, 1);

  const vm = new StandinVm({
    id: args.id,
    agentBin: AGENT_BIN,
    guestDir: guestDirFor(process.pid),
    stdout: process.stdout,
    // The guest powered off or rebooted (reboot=k): Firecracker exits cleanly.
    onGuestExit: () => process.exit(0),
  });
  const server = createApiServer({
    contract: new FirecrackerContract(SPEC),
    vm,
    ...(REQUEST_LOG ? { log: (e) => appendFileSync(REQUEST_LOG, JSON.stringify(e) + "\n") } : {}),
    onFatal: () => {
      void vm.shutdown().finally(() => process.exit(1));
    },
  });
  server.on("error", (e) => fail(`Failed to open the API socket at: ${args.apiSock}. Check that it is not already used. (${e.message})\n`, 1));
  server.listen(args.apiSock);

  // No handler for SIGTERM/SIGINT in Firecracker: the signal ends it. We end the guest first (its
  // pdeathsig would too) and then die by the same signal, so the exit status is a signal's.
  for (const sig of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
    process.once(sig, () => {
      vm.guestProcess?.kill();
      vm.guestProcess?.cleanup();
      process.kill(process.pid, sig);
    });
  }
  process.on("exit", () => vm.guestProcess?.cleanup());
}

main();
