/**
 * Many concurrent downloads through the API arrive intact (issue 8): 60 distinct 1 MiB random
 * files, uploaded first, then fetched in 3 rounds of 20 concurrent GET /files (half as JSON with
 * base64, half as raw bytes) from a daemon child process over a real socket, compared by sha256.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { AUTH, vmSkipReason } from "./helpers.js";
import { startChildMachine, type ChildMachine } from "./child-machine.js";

const skip = vmSkipReason();
const FILES = 60;
const CONCURRENT = 20;
const SIZE = 1024 * 1024;
let m: ChildMachine;
const sums: string[] = [];

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const pathOf = (i: number) => `/dl/f${i}`;

before(async () => {
  if (skip) return;
  m = await startChildMachine({ HYPERFLEET_FILE_MAX_SIZE: String(2 * SIZE) });
  for (let i = 0; i < FILES; i++) {
    const data = randomBytes(SIZE);
    sums.push(sha256(data));
    const r = await m.d.fetch("POST", `/machines/${m.id}/files`, { path: pathOf(i), content: data.toString("base64") });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.size, SIZE);
  }
});
after(async () => {
  if (m) await m.close();
});

async function download(i: number): Promise<Buffer> {
  const raw = i % 2 === 0;
  const res = await fetch(`${m.d.url}/machines/${m.id}/files?path=${encodeURIComponent(pathOf(i))}`, {
    headers: { ...AUTH, accept: raw ? "application/octet-stream" : "application/json" },
  });
  const body = Buffer.from(await res.arrayBuffer());
  assert.equal(res.status, 200, `${pathOf(i)}: ${body.subarray(0, 500).toString()}`);
  if (raw) return body;
  const j = JSON.parse(body.toString()) as { path: string; size: number; content: string };
  assert.equal(j.size, SIZE);
  return Buffer.from(j.content, "base64");
}

test(`${FILES} downloads of 1 MiB, ${CONCURRENT} at a time, arrive intact`, { skip: skip ?? false }, async () => {
  for (let round = 0; round < FILES / CONCURRENT; round++) {
    const ids = Array.from({ length: CONCURRENT }, (_, j) => round * CONCURRENT + j);
    const got = await Promise.all(ids.map(download));
    for (const [k, i] of ids.entries()) {
      assert.equal(got[k]!.length, SIZE, `${pathOf(i)} length`);
      assert.equal(sha256(got[k]!), sums[i], `${pathOf(i)} content`);
    }
  }
});
