/**
 * Fuzz-style robustness: a few hundred malformed bodies, query strings, paths, headers and raw
 * HTTP. No answer may be a 5xx, every error must carry a stable code, and the daemon must still
 * answer afterwards. Deterministic (seeded), so a failure reproduces. No VM can boot here: the
 * boot paths point at files that do not exist.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "node:net";
import { ERROR_CODES } from "../../src/core/errors.js";
import { AUTH, json, startTestDaemon, type TestDaemon } from "./helpers.js";

let t: TestDaemon;
let existing = "";

before(async () => {
  t = await startTestDaemon({
    HYPERFLEET_KERNEL_IMAGE_PATH: "/nonexistent/vmlinux",
    HYPERFLEET_ROOTFS_PATH: "/nonexistent/rootfs.ext4",
    HYPERFLEET_ACCEL: "tcg",
    HYPERFLEET_FILE_MAX_SIZE: "4096",
  });
  const r = await t.req("POST", "/machines", { name: "fuzz-target", vcpu_count: 1, mem_size_mib: 256 });
  existing = json<{ id: string }>(r).id;
});
after(async () => {
  await t.close();
});

/** mulberry32: small, seeded, good enough to pick cases. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = rng(0x5eed);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
const int = (n: number) => Math.floor(rand() * n);

const WEIRD_STRINGS = [
  "", " ", "\u0000", "a\u0000b", "../../etc/passwd", "/", "//", "%00", "%", "%zz", "\u202e", "😀", "\ud800", "x".repeat(5000),
  "null", "true", "1e309", "-0", "NaN", "<script>", "'; DROP TABLE machines; --", "${jndi:ldap://x}", "__proto__", "constructor",
];
const WEIRD_VALUES: unknown[] = [
  null, true, false, 0, -1, 1.5, 1e308, -1e308, Number.MAX_SAFE_INTEGER + 2, "", "1", [], [null], {}, { a: 1 }, [[[[[]]]]],
  ...WEIRD_STRINGS,
];

function randomValue(depth = 0): unknown {
  const r = rand();
  if (depth > 3 || r < 0.5) return pick(WEIRD_VALUES);
  if (r < 0.75) return Array.from({ length: int(4) }, () => randomValue(depth + 1));
  const o: Record<string, unknown> = {};
  for (let i = 0; i < int(5); i++) o[pick([...WEIRD_STRINGS, "name", "vcpu_count", "command", "path", "env"])] = randomValue(depth + 1);
  return o;
}

const VALID: Record<string, Record<string, unknown>> = {
  create: { name: "ok", vcpu_count: 1, mem_size_mib: 256, env: { A: "b" }, metadata: { k: "v" }, start: false },
  exec: { command: ["ls"], timeout: 5, env: { A: "b" }, cwd: "/", stdin: "x" },
  upload: { path: "/tmp/x", content: "QUJD", mode: 420 },
};

/** A valid body with one field replaced, removed, or an extra field added. */
function mutated(kind: keyof typeof VALID): unknown {
  const b: Record<string, unknown> = { ...VALID[kind] };
  const keys = Object.keys(b);
  const r = rand();
  if (r < 0.4) b[pick(keys)] = randomValue();
  else if (r < 0.6) delete b[pick(keys)];
  else if (r < 0.8) b[pick(WEIRD_STRINGS)] = randomValue();
  else return randomValue();
  if (kind === "create") b.name = `fz-${int(1e9)}`; // keep names unique so 409s do not hide other bugs
  return b;
}

const RAW_BODIES = ["{", "}", "[", '{"a":', '{"name":"x",}', "nul", "\u0000\u0001\u0002", "{'a':1}", '{"a":1}{"b":2}', "[".repeat(100_000), '"just a string"', "1", "true", "\uFEFF{}"];
const CONTENT_TYPES = ["application/json", "application/json; charset=utf-8", "text/plain", "application/xml", "multipart/form-data; boundary=x", "application/octet-stream", "application/x-www-form-urlencoded", "", "application/json; charset=utf-16", "*/*"];

function randomPath(): string {
  const id = pick([existing, "vm_01J9Z6Y8W2V4T0S5R3Q1P7N9M8", "vm_", "vm_" + "Z".repeat(26), "VM_01J9Z6Y8W2V4T0S5R3Q1P7N9M8", "..", "%2e%2e", "x".repeat(300), "%E0%A4%A", "😀", "%00", ""]);
  const suffix = pick(["", "/", "/start", "/stop", "/restart", "/exec", "/files", "/files/stat", "/wait", "/nope", "/files/../exec", "//start"]);
  return pick([`/machines/${id}${suffix}`, `/machines${suffix}`, `/${pick(WEIRD_STRINGS).replace(/[^\x21-\x7e]/g, "")}`, "/health/x", "/docs/../machines", "/openapi.json/../machines"]);
}

function randomQuery(): string {
  const parts: string[] = [];
  for (let i = 0; i < int(4); i++) {
    const k = pick(["status", "timeout", "path", "recursive", "x", "status[]", "__proto__", "", "%zz"]);
    const v = pick(["running", "stopped,failed", "-1", "31", "1e9", "0.001", "abc", "/etc/passwd", "relative", "true", "maybe", "", "%00", "%E0%A4%A", "x".repeat(5000), "running,,", ","]);
    parts.push(`${k}=${v}`);
  }
  return parts.length ? `?${parts.join("&")}` : "";
}

function checkAnswer(what: string, status: number, body: string, method: string): void {
  assert.ok(status < 500, `${what} -> ${status} ${body.slice(0, 300)}`);
  if (status >= 400 && method !== "HEAD") {
    const b = JSON.parse(body) as { error?: { code?: string; message?: string } };
    assert.ok(b.error?.code && b.error.code in ERROR_CODES, `${what} -> ${status} without a stable code: ${body.slice(0, 300)}`);
    assert.equal(typeof b.error.message, "string");
  }
}

test("a few hundred malformed requests: no 5xx, every error has a stable code", async () => {
  const statuses = new Map<number, number>();
  const N = 600;
  for (let i = 0; i < N; i++) {
    const method = pick(["GET", "POST", "POST", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS"]);
    const url = randomPath() + randomQuery();
    const ct = pick(CONTENT_TYPES);
    const r = rand();
    let payload: string | Buffer | undefined;
    if (r < 0.35) payload = JSON.stringify(mutated(pick(["create", "exec", "upload"] as const)));
    else if (r < 0.55) payload = JSON.stringify(randomValue());
    else if (r < 0.75) payload = pick(RAW_BODIES);
    else if (r < 0.85) payload = Buffer.from(Array.from({ length: int(64) }, () => int(256)));
    const badAuth: Array<Record<string, string>> = [{}, { authorization: "Bearer" }, { authorization: "Bearer \u00ff" }, { authorization: "x".repeat(9000) }];
    const headers: Record<string, string> = rand() < 0.9 ? { ...AUTH } : { ...pick(badAuth) };
    if (ct !== "" && payload !== undefined) headers["content-type"] = ct;
    const what = `#${i} ${method} ${url.slice(0, 120)} [${ct}] ${String(payload).slice(0, 80)}`;
    const res = await t.daemon.app.inject({ method: method as "GET", url, headers, ...(payload !== undefined && { payload }) });
    statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
    checkAnswer(what, res.statusCode, res.body, method);
  }
  // The mix must really have exercised the error paths, not just one of them.
  if (process.env.FUZZ_VERBOSE) console.log(JSON.stringify([...statuses].sort()));
  for (const s of [400, 401, 404]) assert.ok((statuses.get(s) ?? 0) > 0, `no ${s} among ${JSON.stringify([...statuses])}`);
});

test("field-by-field type confusion on every JSON route", async () => {
  const routes: Array<[string, string, keyof typeof VALID]> = [
    ["POST", "/machines", "create"],
    ["POST", `/machines/${existing}/exec`, "exec"],
    ["POST", `/machines/${existing}/files`, "upload"],
  ];
  let n = 0;
  for (const [method, url, kind] of routes) {
    for (const field of Object.keys(VALID[kind]!)) {
      for (const v of WEIRD_VALUES) {
        const body = { ...VALID[kind], [field]: v, ...(kind === "create" && field !== "name" && { name: `tc-${n}` }) };
        const res = await t.req(method, url, body);
        checkAnswer(`${method} ${url} ${field}=${JSON.stringify(v)?.slice(0, 40)}`, res.statusCode, res.body, method);
        n++;
      }
    }
  }
  assert.ok(n > 100);
});

test("raw malformed HTTP on a real socket: answered with 400 and a stable code, never a crash", async () => {
  const address = await t.daemon.app.listen({ port: 0, host: "127.0.0.1" });
  const { port } = new URL(address);
  const raws = [
    "GARBAGE\r\n\r\n",
    "GET /machines HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    "POST /machines HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    "POST /machines HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
    `GET /machines HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`,
    "GET /\u0000 HTTP/1.1\r\nHost: x\r\n\r\n",
  ];
  for (const raw of raws) {
    const answer = await new Promise<string>((resolve) => {
      const s = connect(Number(port), "127.0.0.1");
      let got = "";
      s.on("data", (d) => (got += d.toString()));
      s.on("close", () => resolve(got));
      s.on("error", () => resolve(got));
      s.end(raw);
      setTimeout(() => s.destroy(), 3000);
    });
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0);
    assert.ok(status >= 400 && status < 500, `${JSON.stringify(raw.slice(0, 60))} -> ${answer.slice(0, 200)}`);
    assert.match(answer, /"code":"MALFORMED_REQUEST"/);
  }
  // Still alive and well.
  const h = await fetch(`${address}/health`);
  assert.equal(h.status, 200);
});
