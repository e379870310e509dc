/**
 * The `openssl` command lines of the proxy's local CA (pure, golden-tested): an EC P-256 CA valid
 * ten years, and a `*.<domain>` leaf it signs (397 days: what browsers accept for a server cert).
 */
import { join } from "node:path";

export interface CaFiles {
  dir: string;
  caKey: string;
  caCert: string;
  key: string;
  cert: string;
  csr: string;
  ext: string;
}

export function caFiles(dir: string): CaFiles {
  return {
    dir,
    caKey: join(dir, "ca.key"),
    caCert: join(dir, "ca.crt"),
    key: join(dir, "proxy.key"),
    cert: join(dir, "proxy.crt"),
    csr: join(dir, "proxy.csr"),
    ext: join(dir, "proxy.ext"),
  };
}

const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

export function caArgv(f: CaFiles): string[] {
  return [
    "req", "-x509", ...EC, "-keyout", f.caKey, "-out", f.caCert, "-days", "3650", "-sha256",
    "-subj", "/O=Hyperfleet/CN=Hyperfleet local CA",
    "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
    "-addext", "keyUsage=critical,keyCertSign,cRLSign",
  ];
}

export function leafRequestArgv(f: CaFiles, domain: string): string[] {
  return ["req", "-new", ...EC, "-keyout", f.key, "-out", f.csr, "-subj", `/O=Hyperfleet/CN=*.${domain}`];
}

/** `serialHex`: 16 random bytes in hex (a CA must not reuse serials; no serial file to keep). */
export function leafSignArgv(f: CaFiles, serialHex: string): string[] {
  return ["x509", "-req", "-in", f.csr, "-CA", f.caCert, "-CAkey", f.caKey, "-set_serial", `0x${serialHex}`, "-days", "397", "-sha256", "-extfile", f.ext, "-out", f.cert];
}

/** The leaf's extensions: the wildcard and the bare domain, a server certificate only. */
export function leafExtensions(domain: string): string {
  return [
    `subjectAltName=DNS:*.${domain},DNS:${domain}`,
    "basicConstraints=critical,CA:FALSE",
    "keyUsage=critical,digitalSignature",
    "extendedKeyUsage=serverAuth",
    "",
  ].join("\n");
}
