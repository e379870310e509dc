import { randomBytes } from "node:crypto";
import type { CreateMachineBody } from "../../sdk/index.js";
import { envPairs, intOption, parse, secondsOption, str, strs, usageError } from "../args.js";
import { showHelp, type Command } from "../command.js";
import type { Ctx } from "../context.js";
import { runInGuest } from "../guest-command.js";
import { interactive } from "./exec.js";
import { json } from "../output.js";
import { secretPairs } from "../secret-args.js";
import { HEALTH_HELP, HEALTH_OPTIONS, healthFields } from "./run-health.js";

const DEFAULT_MEMORY_MIB = 256;
const BOOT_TIMEOUT_S = 300;

/** `512`, `512m`, `512MiB`, `1g`: MiB (a bare number is MiB, the API's unit). */
export function memoryMib(text: string): number {
  const m = /^(\d+)\s*(m|mb|mib|g|gb|gib)?$/i.exec(text.trim());
  if (!m) throw usageError(`--memory ${text}: expected a size such as 512m or 1g`);
  return Number(m[1]) * (m[2]?.toLowerCase().startsWith("g") ? 1024 : 1);
}

/** `-p [IP:]HOST:GUEST[/tcp|udp]` (Docker's form; HOST may be empty for "any free port"). */
export function portSpec(text: string): NonNullable<CreateMachineBody["exposed_ports"]>[number] {
  const m = /^(?:(\d{1,3}(?:\.\d{1,3}){3}):)?(\d*):(\d+)(?:\/(tcp|udp))?$/.exec(text);
  if (!m) throw usageError(`-p ${text}: expected [IP:]HOST_PORT:GUEST_PORT[/udp], e.g. 8080:80`);
  const port = (s: string) => {
    const n = Number(s);
    if (n < 1 || n > 65535) throw usageError(`-p ${text}: ports are 1-65535`);
    return n;
  };
  return {
    guest_port: port(m[3]!),
    ...(m[2] !== "" && { host_port: port(m[2]!) }),
    ...(m[1] !== undefined && { host_ip: m[1] }),
    ...(m[4] !== undefined && { protocol: m[4] as "tcp" | "udp" }),
  };
}

/** `--service PORT[:public|private]` (default private): a guest port served by the daemon's proxy. */
export function serviceSpec(text: string): NonNullable<CreateMachineBody["services"]>[number] {
  const m = /^(\d{1,5})(?::(public|private))?$/.exec(text);
  const port = Number(m?.[1]);
  if (!m || port < 1 || port > 65535) throw usageError(`--service ${text}: expected PORT[:public|private] with PORT 1-65535, e.g. 8080:public`);
  return { port, visibility: (m[2] as "public" | "private" | undefined) ?? "private" };
}

/** `-v NAME:/MOUNT[:ro]` of `run`: a volume the machine holds and mounts (docs/agents.md "Volumes"). */
export function volumeSpec(text: string): { name: string; mount: string; read_only?: boolean } {
  const m = /^([^:/]+):(\/[^:]*)(?::(ro|rw))?$/.exec(text);
  if (!m) throw usageError(`-v ${text}: expected NAME:/MOUNT[:ro], e.g. state:/data`);
  return { name: m[1]!, mount: m[2]!, ...(m[3] === "ro" && { read_only: true }) };
}

export const run: Command = {
  name: "run",
  summary: "create and start a machine, and run a command in it",
  errorStatus: 125,
  help: `usage: hyperfleet run [-d] [--name NAME] [--cpus N] [--memory SIZE] [-p [IP:]HOST:GUEST[/udp]]...
                      [--service PORT[:public|private]]... [-e NAME=VALUE]... [--secret NAME[=VALUE]]... [--secret-file NAME=PATH]... [-v NAME:/MOUNT[:ro]]... [--rm] [--no-image] [--restart POLICY]
                      [--health-cmd CMD | --health-http PORT/PATH] [IMAGE] [CMD [ARG...]]

Create a machine from IMAGE (an OCI reference; without one, or with --no-image, the built-in
busybox root disk), start it and wait until it runs. Then:
  with CMD:     run CMD in it, print its output and exit with its exit status (as 'exec' does);
  without CMD:  print the machine's id.
With -d the machine is created and started in the background and its id printed at once; a CMD
then replaces the image's command as the machine's main process (see 'hyperfleet logs').

  -d, --detach           do not wait; CMD (needs IMAGE) becomes the main process
      --name NAME        machine name (default run-<random>)
      --cpus N           vCPUs (default 1)
      --memory SIZE      memory: 512m, 1g, or MiB (default ${DEFAULT_MEMORY_MIB})
  -p, --publish SPEC     forward a host port to a guest port (gives the machine a network)
      --service PORT[:public|private]
                         serve a guest port at the daemon's proxy URL (https://PORT-<id>.<domain>;
                         the first also at https://NAME.<domain>); private (default) needs the
                         machine's token ('hyperfleet token'); gives the machine a network
  -e, --env NAME=VALUE   environment of the main process and of CMD (repeatable)
      --secret NAME[=VALUE]  a secret: in the main process's environment and /run/secrets/NAME,
                         never in CMD's environment (read it from the file); NAME alone takes
                         the value from this shell's environment, off the process list (repeatable)
      --secret-file NAME=PATH  a secret read from a file (repeatable)
  -v, --volume SPEC      NAME:/MOUNT[:ro]: hold volume NAME ('hyperfleet volume create') and mount it
                         at /MOUNT, read-only with :ro (repeatable; one machine at a time per volume)
      --rm               delete the machine once CMD has finished
      --no-image         the built-in root disk; every positional is CMD
      --timeout SECONDS  CMD's timeout (default 60)
      --json             print the machine (JSON) instead of its id (without CMD)
  -i, --interactive      pass this process's stdin to CMD
  -t, --tty              run CMD (default /bin/sh) on a terminal sized like this one, streamed
${HEALTH_HELP}
Exit status: CMD's; 125 when hyperfleet itself failed (the message names the error code),
124/126/127 as for 'exec'.
`,
  async run(args, ctx) {
    const p = parse(
      args,
      {
        detach: { type: "boolean", short: "d" },
        name: { type: "string" },
        cpus: { type: "string" },
        memory: { type: "string", short: "m" },
        publish: { type: "string", short: "p", multiple: true },
        service: { type: "string", multiple: true },
        env: { type: "string", short: "e", multiple: true },
        secret: { type: "string", multiple: true },
        "secret-file": { type: "string", multiple: true },
        volume: { type: "string", short: "v", multiple: true },
        rm: { type: "boolean" },
        "no-image": { type: "boolean" },
        timeout: { type: "string" },
        json: { type: "boolean" },
        interactive: { type: "boolean", short: "i" },
        tty: { type: "boolean", short: "t" },
        ...HEALTH_OPTIONS,
      },
      { stopAtCommand: args.includes("--no-image") ? 0 : 1 },
    );
    if (p.help) return showHelp(run, ctx);
    const tty = p.values.tty === true;
    const stdin = p.values.interactive === true;
    if ((tty || stdin) && p.values.detach === true) throw usageError("-i/-t run in the foreground: leave out -d");
    const noImage = p.values["no-image"] === true;
    const image = noImage ? undefined : p.positionals[0];
    const given = noImage ? p.positionals : p.positionals.slice(1);
    const command = tty && given.length === 0 ? ["/bin/sh"] : given;
    const detach = p.values.detach === true;
    if (detach && command.length > 0 && image === undefined) throw usageError("-d with a command needs an IMAGE: a machine without one has no main process");
    if (p.values.rm === true && (detach || command.length === 0)) throw usageError("--rm needs a command run in the foreground (no -d)");
    const ports = strs(p.values.publish).map(portSpec);
    const services = strs(p.values.service).map(serviceSpec);
    const env = envPairs(strs(p.values.env));
    const secrets = secretPairs({ inline: strs(p.values.secret), files: strs(p.values["secret-file"]) });
    const volumes = strs(p.values.volume).map(volumeSpec);
    const timeout = secondsOption("timeout", str(p.values.timeout));
    const body: CreateMachineBody = {
      name: str(p.values.name) ?? `run-${randomBytes(4).toString("hex")}`,
      vcpu_count: intOption("cpus", str(p.values.cpus), 1, 32) ?? 1,
      mem_size_mib: p.values.memory === undefined ? DEFAULT_MEMORY_MIB : memoryMib(String(p.values.memory)),
      start: true,
      ...(image !== undefined && { image }),
      ...(detach && command.length > 0 && { cmd: command }),
      ...(env !== undefined && { env }),
      ...(secrets !== undefined && { secrets }),
      ...(ports.length > 0 && { network: true, exposed_ports: ports }),
      ...(services.length > 0 && { network: true, services }),
      ...healthFields(p.values),
      ...(volumes.length > 0 && { volumes }),
    };
    const hf = ctx.client();
    const created = (await hf.machines.create(body)).unwrap();
    if (detach) return done(ctx, p.values.json === true, created);
    try {
      const up = (await hf.machines.wait(created.id, { timeoutMs: BOOT_TIMEOUT_S * 1000 })).unwrap();
      if (command.length === 0) return done(ctx, p.values.json === true, up);
      if (tty) return await interactive(ctx, created.id, command, stdin, { ...(env !== undefined && { env }) });
      return await runInGuest(hf, created.id, { command, stdin, ...(env !== undefined && { env }), ...(timeout !== undefined && { timeout }) }, ctx);
    } finally {
      if (p.values.rm === true) (await hf.machines.delete(created.id)).unwrap();
    }
  },
};

function done(ctx: Ctx, asJson: boolean, m: { id: string }): number {
  if (asJson) json(ctx.out, m);
  else ctx.out.write(`${m.id}\n`);
  return 0;
}
