/** `npm start` entry point. */
import { runDaemon } from "./run.js";

await runDaemon();
