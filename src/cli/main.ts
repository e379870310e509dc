/**
 * `hyperfleet <command>`. Only `serve` for now; client commands will be built on the SDK.
 */
const USAGE = `usage: hyperfleet <command>

commands:
  serve     run the API daemon (configured by environment variables; see src/config/README.md)
  help      show this text
`;

export async function main(argv: readonly string[]): Promise<number> {
  const [cmd] = argv;
  switch (cmd) {
    case "serve": {
      const { runDaemon } = await import("../daemon/run.js");
      await runDaemon();
      return -1; // keeps running; exits from its signal handlers
    }
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(USAGE);
      return 0;
    default:
      process.stderr.write(`hyperfleet: unknown command '${cmd}'\n\n${USAGE}`);
      return 2;
  }
}

const code = await main(process.argv.slice(2));
if (code >= 0) process.exitCode = code;
