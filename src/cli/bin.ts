/** The `hyperfleet` executable's entry (bin/hyperfleet.js loads it): main() with the process's streams. */
import { main } from "./main.js";

// A reader that went away (`hyperfleet logs -f web | head`) ends us quietly, as it ends `cat`.
for (const s of [process.stdout, process.stderr]) {
  s.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code !== "EPIPE") throw e;
    process.exit(0);
  });
}

const code = await main(process.argv.slice(2));
if (code >= 0) process.exitCode = code;
