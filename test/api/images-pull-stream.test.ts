/**
 * POST /images/pull with Accept: application/x-ndjson against a real daemon (over its loopback
 * socket, so the stream is read as it comes) and a real loopback registry: progress lines whose
 * byte counts never go down and end at the total, then the image; an unknown image ends with an
 * error line carrying the code (status 200: the stream had started); without the header the
 * answer is the plain image JSON as before.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { addLabelVariants, buildBusyboxLayout, push, workDir } from "../images/fixtures.js";
import { startRegistry, type TestRegistry } from "../images/registry.js";
import { AUTH } from "./helpers.js";
import { startImageDaemon, type ImageDaemon, type ImageJson } from "./images-helpers.js";

let registry: TestRegistry;
let fixtures: string;
let d: ImageDaemon | undefined;
let image = "";
let shared = "";

before(async () => {
  registry = await startRegistry();
  fixtures = await workDir();
  const layout = await buildBusyboxLayout(fixtures);
  image = `${registry.host}/test/stream:1`;
  await push(layout, "bb", image);
  const [tag] = await addLabelVariants(layout, 1);
  shared = `${registry.host}/test/stream:${tag}`;
  await push(layout, tag!, shared);
  d = await startImageDaemon({ HYPERFLEET_INSECURE_REGISTRIES: registry.host });
});

after(async () => {
  await d?.close();
  await registry?.stop();
  if (fixtures) await rm(fixtures, { recursive: true, force: true });
});

interface Progress { phase: string; layers_done: number; layers_total: number; bytes_done: number; bytes_total: number }
type Line = Progress | { image: ImageJson } | { error: { code: string; message: string } };

async function pullLines(ref: string): Promise<{ status: number; type: string | null; requestId: string | null; lines: Line[] }> {
  const r = await fetch(`${d!.url}/images/pull`, {
    method: "POST",
    headers: { ...AUTH, "content-type": "application/json", accept: "application/x-ndjson" },
    body: JSON.stringify({ image: ref }),
  });
  const text = await r.text();
  assert.ok(text.endsWith("\n"), text);
  return { status: r.status, type: r.headers.get("content-type"), requestId: r.headers.get("x-request-id"), lines: text.trimEnd().split("\n").map((l) => JSON.parse(l) as Line) };
}

function checkProgress(lines: Line[]): Progress[] {
  const progress = lines.slice(0, -1) as Progress[];
  assert.ok(progress.length > 0, "at least one progress line");
  let prev = 0;
  for (const p of progress) {
    assert.equal(typeof p.phase, "string");
    assert.ok(p.bytes_done >= prev, `bytes_done went down: ${JSON.stringify(progress)}`);
    assert.ok(p.bytes_done <= p.bytes_total || p.bytes_total === 0, JSON.stringify(p));
    prev = p.bytes_done;
  }
  const last = progress.at(-1)!;
  assert.equal(last.phase, "done");
  assert.ok(last.bytes_total > 0 && last.layers_total > 0, JSON.stringify(last));
  assert.equal(last.bytes_done, last.bytes_total);
  assert.equal(last.layers_done, last.layers_total);
  return progress;
}

test("a cold pull streams non-decreasing progress ending at the total, then the image", async () => {
  const r = await pullLines(image);
  assert.equal(r.status, 200);
  assert.equal(r.type, "application/x-ndjson");
  assert.ok(r.requestId, "x-request-id set as on every answer");
  const progress = checkProgress(r.lines);
  assert.ok(progress.some((p) => p.phase === "downloading"), JSON.stringify(progress));
  const end = r.lines.at(-1) as { image: ImageJson };
  assert.match(end.image.digest, /^sha256:[0-9a-f]{64}$/);
  assert.deepEqual(end.image.refs, [image]);

  // Cached now: a `done` line at once, then the same image.
  const again = await pullLines(image);
  checkProgress(again.lines);
  assert.equal((again.lines.at(-1) as { image: ImageJson }).image.digest, end.image.digest);

  // Without the header nothing changed: one JSON object.
  const plain = await d!.req("POST", "/images/pull", { image });
  assert.equal(plain.statusCode, 200);
  assert.match(plain.headers["content-type"] as string, /^application\/json/);
  assert.equal((JSON.parse(plain.body) as ImageJson).digest, end.image.digest);
});

test("an unknown image ends the stream with an error line with the API's code", async () => {
  const r = await pullLines(`${registry.host}/test/nothing:here`);
  assert.equal(r.status, 200);
  const end = r.lines.at(-1) as { error: { code: string; message: string } };
  assert.equal(end.error.code, "IMAGE_NOT_FOUND", JSON.stringify(r.lines));
  assert.ok(end.error.message.length > 0);
  for (const l of r.lines.slice(0, -1)) assert.ok("phase" in l, JSON.stringify(l));
});

test("a client leaving the stream does not cancel the pull another request shares", async () => {
  const ac = new AbortController();
  const leaver = await fetch(`${d!.url}/images/pull`, {
    method: "POST",
    headers: { ...AUTH, "content-type": "application/json", accept: "application/x-ndjson" },
    body: JSON.stringify({ image: shared }),
    signal: ac.signal,
  });
  const staying = pullLines(shared);
  const reader = leaver.body!.getReader();
  const first = new TextDecoder().decode((await reader.read()).value);
  assert.match(first, /"phase":"resolving"/);
  ac.abort();
  await reader.cancel().catch(() => undefined);
  const r = await staying;
  checkProgress(r.lines);
  assert.deepEqual((r.lines.at(-1) as { image: ImageJson }).image.refs, [shared]);
});

test("request validation still answers 400 before any stream", async () => {
  const r = await fetch(`${d!.url}/images/pull`, {
    method: "POST",
    headers: { ...AUTH, "content-type": "application/json", accept: "application/x-ndjson" },
    body: JSON.stringify({ image: "Not/Valid" }),
  });
  assert.equal(r.status, 400);
  assert.equal(((await r.json()) as { error: { code: string } }).error.code, "INVALID_ARGUMENT");
});
