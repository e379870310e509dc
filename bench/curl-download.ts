/**
 * bench:proxy's download client: curl, spawned per download. Node's own client spent 2.45 ms of
 * CPU per MiB reading through the TLS proxy and 1.67 ms from the exposed port (curl: 0.83 and
 * 0.64), measured in the same run on this 2-core host, where that CPU is taken from the guest and
 * the proxy being measured: the median proxy/exposed ratio was 0.75x with Node reading and 1.12x
 * with curl. A user's client (curl, a browser) is native code on a machine of its own.
 */
import { spawn } from "node:child_process";

export interface Download {
  bytes: number;
  /** Over the transfer: from the request (after connect and TLS) to the last byte. */
  mibPerS: number;
}

/** curl's arguments; `resolveTo` makes the connection to that address whatever the host name (no DNS for `*.<domain>` here). */
export function curlArgs(url: URL, o: { caPath?: string; resolveTo?: string } = {}): string[] {
  return [
    "--silent",
    "--show-error",
    "--fail",
    // A download that stalls fails the run rather than hanging it.
    "--speed-limit",
    "1048576",
    "--speed-time",
    "30",
    "--output",
    "/dev/null",
    "--write-out",
    "%{size_download} %{time_pretransfer} %{time_total}",
    ...(o.caPath ? ["--cacert", o.caPath] : []),
    ...(o.resolveTo ? ["--resolve", `${url.hostname}:${url.port}:${o.resolveTo}`] : []),
    url.href,
  ];
}

export function download(args: string[]): Promise<Download> {
  return new Promise((resolve, reject) => {
    const child = spawn("curl", args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => {
      if (err.length < 4096) err += d.toString();
    });
    child.once("error", reject);
    child.once("close", (code) => {
      const [bytes, pre, total] = out.trim().split(" ").map(Number);
      if (code !== 0 || bytes === undefined || pre === undefined || total === undefined || !(total > pre)) {
        return reject(new Error(`curl ${args.at(-1)}: exit ${code} ${err.trim()} ${out.trim()}`));
      }
      resolve({ bytes, mibPerS: bytes / 1048576 / (total - pre) });
    });
  });
}
