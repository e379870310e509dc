/**
 * The proxy's certificate: the operator's (HYPERFLEET_PROXY_TLS_CERT/_KEY), or a local CA made
 * once in `<dataDir>/proxy/` with a `*.<domain>` leaf it signs. The CA is kept across restarts (a
 * user trusts it once); the leaf is made again when the domain changed or it is about to expire.
 */
import { execFile } from "node:child_process";
import { randomBytes, X509Certificate } from "node:crypto";
import { chmod, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { HyperfleetError } from "../core/errors.js";
import { caArgv, caFiles, leafExtensions, leafRequestArgv, leafSignArgv, type CaFiles } from "./openssl.js";

export interface ProxyCertificate {
  cert: Buffer;
  key: Buffer;
  /** The generated CA's certificate (to trust); null for the operator's certificate. */
  caPath: string | null;
  /** Whether this start made a new CA (the log then says how to trust it). */
  createdCa: boolean;
}

/** A leaf closer than this to its end is made again. */
const RENEW_BEFORE_MS = 30 * 86_400_000;
const OPENSSL_TIMEOUT_MS = 30_000;

export async function configuredCertificate(certPath: string, keyPath: string): Promise<ProxyCertificate> {
  return { cert: await readFile(certPath), key: await readFile(keyPath), caPath: null, createdCa: false };
}

export async function localCaCertificate(dir: string, domain: string, openssl = "openssl"): Promise<ProxyCertificate> {
  const f = caFiles(dir);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  let createdCa = false;
  if (!existsSync(f.caKey) || !existsSync(f.caCert)) {
    await run(openssl, caArgv(f));
    createdCa = true;
  }
  await chmod(f.caKey, 0o600);
  if (createdCa || !(await leafFits(f, domain))) await makeLeaf(f, domain, openssl);
  return { cert: await readFile(f.cert), key: await readFile(f.key), caPath: f.caCert, createdCa };
}

async function leafFits(f: CaFiles, domain: string): Promise<boolean> {
  if (!existsSync(f.cert) || !existsSync(f.key)) return false;
  try {
    const leaf = new X509Certificate(await readFile(f.cert));
    const ca = new X509Certificate(await readFile(f.caCert));
    return leaf.verify(ca.publicKey) && leaf.checkHost(`x.${domain}`) !== undefined && Date.parse(leaf.validTo) - Date.now() > RENEW_BEFORE_MS;
  } catch {
    return false;
  }
}

async function makeLeaf(f: CaFiles, domain: string, openssl: string): Promise<void> {
  await writeFile(f.ext, leafExtensions(domain), { mode: 0o600 });
  try {
    await run(openssl, leafRequestArgv(f, domain));
    await chmod(f.key, 0o600);
    await run(openssl, leafSignArgv(f, randomBytes(16).toString("hex")));
  } finally {
    await rm(f.csr, { force: true });
    await rm(f.ext, { force: true });
  }
}

function run(bin: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    // umask 077 is not ours to set: keys are chmodded right after; the directory is 0700 meanwhile.
    execFile(bin, args, { timeout: OPENSSL_TIMEOUT_MS, maxBuffer: 1 << 20 }, (e, _out, stderr) => {
      if (!e) return resolve();
      if ((e as NodeJS.ErrnoException).code === "ENOENT") {
        return reject(new HyperfleetError("HOST_TOOL_MISSING", `${bin} is not installed; the proxy's local CA needs it (apt-get install openssl), or set HYPERFLEET_PROXY_TLS_CERT and _KEY`));
      }
      reject(new HyperfleetError("INTERNAL", `openssl ${args[0]} failed: ${String(stderr).slice(0, 2000) || e.message}`, { cause: e }));
    });
  });
}
