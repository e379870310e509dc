/** The `hyperfleet` executable's entry (bin/hyperfleet.js loads it): main() with the process's streams. */
import { main } from "./main.js";

const code = await main(process.argv.slice(2));
if (code >= 0) process.exitCode = code;
