/**
 * The Firecracker API client against a small HTTP server on a Unix socket (the stand-in process is
 * tested with the driver in test/vmm/firecracker.test.ts): what goes on the wire, what a refusal
 * becomes, and the bounds (contract, body size, time).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HyperfleetError } from "../../src/core/errors.js";
import { FirecrackerApi, MAX_RESPONSE_BYTES } from "../../src/vmm/firecracker/api.js";
import { pauseVm } from "../../src/vmm/firecracker/config.js";

interface Seen {
  method: string;
  url: string;
  contentType: string | undefined;
  body: string;
}

describe("FirecrackerApi", () => {
  let dir: string;
  let server: Server;
  let sock: string;
  const seen: Seen[] = [];
  let answer: (req: IncomingMessage, res: ServerResponse) => void = (_q, res) => res.writeHead(204).end();

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "hf-fcapi-"));
    sock = join(dir, "api.sock");
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        seen.push({ method: req.method ?? "", url: req.url ?? "", contentType: req.headers["content-type"], body: Buffer.concat(chunks).toString() });
        answer(req, res);
      });
    });
    await new Promise<void>((r) => server.listen(sock, r));
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await rm(dir, { recursive: true, force: true });
  });

  test("a valid request goes out as JSON and a 204 resolves", async () => {
    seen.length = 0;
    answer = (_q, res) => res.writeHead(204).end();
    const r = await new FirecrackerApi(sock).send(pauseVm());
    assert.deepEqual(r, { status: 204, body: null });
    assert.deepEqual(seen, [{ method: "PATCH", url: "/vm", contentType: "application/json", body: '{"state":"Paused"}' }]);
  });

  test("a GET answer's JSON body comes back parsed", async () => {
    answer = (_q, res) => res.writeHead(200, { "Content-Type": "application/json" }).end('{"app_name":"Firecracker","id":"x","state":"Running","vmm_version":"1.16.1"}');
    const r = await new FirecrackerApi(sock).send({ method: "GET", path: "/" });
    assert.equal((r.body as { state: string }).state, "Running");
  });

  test("a request the API definition refuses is never sent: INTERNAL (a bug of ours)", async () => {
    seen.length = 0;
    for (const bad of [
      { method: "PUT" as const, path: "/drives/rootfs", body: { drive_id: "rootfs", path_on_host: "/x", is_root_device: true, is_read_only: false, cache: "Unsafe" } },
      { method: "PUT" as const, path: "/no-such-thing", body: {} },
      { method: "PATCH" as const, path: "/vm", body: { state: "Frozen" } },
    ]) {
      await assert.rejects(new FirecrackerApi(sock).send(bad), (e: unknown) => e instanceof HyperfleetError && e.code === "INTERNAL" && e.message.includes(bad.path));
    }
    assert.deepEqual(seen, [], "nothing reached the socket");
  });

  test("a fault_message becomes the caller's code, naming the request and Firecracker's words", async () => {
    answer = (_q, res) => res.writeHead(400, { "Content-Type": "application/json" }).end('{"fault_message":"The requested operation is not supported after starting the microVM."}');
    const err = await new FirecrackerApi(sock).send(pauseVm(), { code: "SNAPSHOT_FAILED" }).catch((e: unknown) => e);
    assert.ok(err instanceof HyperfleetError);
    assert.equal(err.code, "SNAPSHOT_FAILED");
    assert.match(err.message, /PATCH \/vm/);
    assert.match(err.message, /not supported after starting the microVM/);
    assert.equal(err.details?.faultMessage, "The requested operation is not supported after starting the microVM.");
    const dflt = await new FirecrackerApi(sock).send(pauseVm()).catch((e: unknown) => e);
    assert.ok(dflt instanceof HyperfleetError && dflt.code === "VMM_CONTROL_FAILED");
  });

  test("an answer larger than the bound is refused, not buffered", async () => {
    answer = (_q, res) => {
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(`"${"x".repeat(MAX_RESPONSE_BYTES + 10)}"`);
    };
    await assert.rejects(new FirecrackerApi(sock).send({ method: "GET", path: "/" }), (e: unknown) => e instanceof HyperfleetError && e.code === "VMM_CONTROL_FAILED" && /larger than/.test(e.message));
  });

  test("no answer within the timeout is a coded error", async () => {
    answer = () => undefined; // never answers
    const t0 = Date.now();
    await assert.rejects(new FirecrackerApi(sock).send({ method: "GET", path: "/" }, { timeoutMs: 200, code: "VMM_SPAWN_FAILED" }), (e: unknown) => e instanceof HyperfleetError && e.code === "VMM_SPAWN_FAILED" && /within 200 ms/.test(e.message));
    assert.ok(Date.now() - t0 < 5_000);
  });

  test("a connection closed before the answer, or no socket at all, is a coded error", async () => {
    answer = (req) => req.socket.destroy();
    await assert.rejects(new FirecrackerApi(sock).send(pauseVm()), (e: unknown) => e instanceof HyperfleetError && e.code === "VMM_CONTROL_FAILED");
    await assert.rejects(new FirecrackerApi(join(dir, "missing.sock")).send(pauseVm()), (e: unknown) => e instanceof HyperfleetError && e.code === "VMM_CONTROL_FAILED" && /ENOENT/.test(e.message));
  });
});
