/**
 * The proxy's reading of guests' HTTP/1.1 answers (src/proxy/http1.ts): heads, framings, what is
 * refused, and bodies fed in every split a network could make of them.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { BodyReader, readResponseHead, type BodyFraming } from "../../src/proxy/http1.js";

const MAX = 16_384;
const head = (text: string, method = "GET") => readResponseHead(Buffer.from(text, "latin1"), method, MAX);

function ok(text: string, method = "GET") {
  const r = head(text, method);
  assert.equal(r.kind, "head", JSON.stringify(r));
  return r.kind === "head" ? r : assert.fail();
}

function invalid(text: string, why: RegExp) {
  const r = head(text);
  assert.ok(r.kind === "invalid" && why.test(r.reason), `${JSON.stringify(text)} -> ${JSON.stringify(r)}`);
}

test("head: status, reason, headers as received, and where the body starts (CRLF and LF-only)", () => {
  const r = ok("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-A:  spaced  \r\n\r\nabc");
  assert.deepEqual([r.head.status, r.head.reason, r.head.rawHeaders], [200, "OK", ["Content-Length", "3", "X-A", "spaced"]]);
  assert.deepEqual(r.head.body, { kind: "length", length: 3 });
  assert.equal(r.used, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-A:  spaced  \r\n\r\n".length);
  assert.equal(r.head.reusable, true);
  const lf = ok("HTTP/1.1 404 Not Found\nContent-Length: 0\n\nnext");
  assert.deepEqual([lf.head.status, lf.used, lf.head.body], [404, "HTTP/1.1 404 Not Found\nContent-Length: 0\n\n".length, { kind: "length", length: 0 }]);
  assert.equal(ok("HTTP/1.1 204 \r\n\r\n").head.reason, "");
  assert.equal(head("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n").kind, "more");
  assert.equal(head("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r").kind, "more");
});

test("head: framing by method and status, Transfer-Encoding over Content-Length, reuse", () => {
  assert.deepEqual(ok("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", "HEAD").head.body, { kind: "none" });
  assert.deepEqual(ok("HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n").head.body, { kind: "none" });
  assert.deepEqual(ok("HTTP/1.1 100 Continue\r\n\r\n").head.body, { kind: "none" });
  const chunked = ok("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n").head;
  assert.deepEqual([chunked.body, chunked.reusable], [{ kind: "chunked" }, true]);
  const both = ok("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n").head;
  assert.deepEqual([both.body, both.reusable], [{ kind: "chunked" }, false], "both framings: read by chunks, never reused");
  const notChunked = ok("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n").head;
  assert.deepEqual([notChunked.body, notChunked.reusable], [{ kind: "close" }, false]);
  const none = ok("HTTP/1.1 200 OK\r\n\r\n").head;
  assert.deepEqual([none.body, none.reusable], [{ kind: "close" }, false]);
  assert.equal(ok("HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n").head.reusable, false);
  assert.equal(ok("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").head.reusable, false);
  assert.equal(ok("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n").head.reusable, true);
  assert.deepEqual(ok("HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\n\r\n").head.body, { kind: "length", length: 7 });
});

test("head: refused where an answer could run into the next, or a header could not be sent on", () => {
  invalid("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", /differ/);
  invalid("HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\n", /differ/);
  invalid("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", /Content-Length/);
  invalid("HTTP/1.1 200 OK\r\nContent-Length: 1e3\r\n\r\n", /Content-Length/);
  invalid("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999\r\n\r\n", /Content-Length/);
  invalid("HTTP/1.1 200 OK\r\nX-A: a\r\n  folded\r\n\r\n", /obs-fold/);
  invalid("HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", /name/);
  invalid("HTTP/1.1 200 OK\r\n: x\r\n\r\n", /name/);
  invalid("HTTP/1.1 200 OK\r\nX-A: a\x00b\r\n\r\n", /control/);
  invalid("HTTP/1.1 200 OK\r\nX-A: a\rSet-Cookie: b\r\n\r\n", /control/);
  invalid("HTTP/2 200\r\n\r\n", /status line/);
  invalid("SSH-2.0-OpenSSH\r\n\r\n", /status line/);
  invalid("HTTP/1.1 099 Low\r\n\r\n", /status/);
  invalid("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", /101/);
  assert.equal(ok("HTTP/1.1 200 O\x01K\r\nContent-Length: 0\r\n\r\n").head.reason, "", "a reason Node would refuse is dropped");
  const huge = `HTTP/1.1 200 OK\r\nX-A: ${"a".repeat(MAX)}\r\n\r\n`;
  invalid(huge, /over 16384 bytes/);
  invalid(`HTTP/1.1 200 OK\r\nX-A: ${"a".repeat(MAX)}`, /over 16384 bytes/);
});

/** Every way of cutting `wire` in two, and in single bytes: the same body and the same rest. */
function readAllSplits(framing: BodyFraming, wire: string): { body: string; rest: string; done: boolean } {
  const whole = read(framing, [Buffer.from(wire, "latin1")]);
  for (let cut = 1; cut < wire.length; cut++) {
    const b = Buffer.from(wire, "latin1");
    assert.deepEqual(read(framing, [b.subarray(0, cut), b.subarray(cut)]), whole, `cut at ${cut}`);
  }
  assert.deepEqual(read(framing, [...Buffer.from(wire, "latin1")].map((x) => Buffer.from([x]))), whole, "byte by byte");
  return whole;
}

function read(framing: BodyFraming, pieces: Buffer[]): { body: string; rest: string; done: boolean } {
  const r = new BodyReader(framing);
  let body = "";
  let rest = "";
  for (const p of pieces) {
    if (r.done) {
      rest += p.toString("latin1");
      continue;
    }
    const f = r.feed(p);
    if (f.kind === "invalid") throw new Error(f.reason);
    body += f.data.map((d) => d.toString("latin1")).join("");
    rest += f.rest.toString("latin1");
  }
  return { body, rest, done: r.done };
}

test("body: chunked, with extensions, trailers and LF-only lines, in every split; then what follows", () => {
  const wire = "5;ext=1\r\nhello\r\n1a\r\n" + "x".repeat(26) + "\r\n0\r\nX-Trailer: t\r\n\r\nHTTP/1.1";
  assert.deepEqual(readAllSplits({ kind: "chunked" }, wire), { body: "hello" + "x".repeat(26), rest: "HTTP/1.1", done: true });
  assert.deepEqual(readAllSplits({ kind: "chunked" }, "3\nabc\n0\n\n"), { body: "abc", rest: "", done: true });
  assert.deepEqual(readAllSplits({ kind: "chunked" }, "3\r\nabc\r\n"), { body: "abc", rest: "", done: false });
  assert.deepEqual(readAllSplits({ kind: "length", length: 4 }, "abcdefg"), { body: "abcd", rest: "efg", done: true });
  assert.deepEqual(readAllSplits({ kind: "close" }, "all of it"), { body: "all of it", rest: "", done: false });
  const closed = new BodyReader({ kind: "close" });
  assert.equal(closed.ended(), true, "a close-delimited body is complete when the connection ends");
  const cut = new BodyReader({ kind: "length", length: 4 });
  cut.feed(Buffer.from("ab"));
  assert.equal(cut.ended(), false, "a length body cut short is not");
  assert.equal(new BodyReader({ kind: "none" }).done, true);
  assert.equal(new BodyReader({ kind: "length", length: 0 }).done, true);
});

test("body: bad chunk framing is refused, and lines are bounded", () => {
  const bad = (wire: string, why: RegExp) => {
    const f = new BodyReader({ kind: "chunked" }).feed(Buffer.from(wire, "latin1"));
    assert.ok(f.kind === "invalid" && why.test(f.reason), `${JSON.stringify(wire)} -> ${JSON.stringify(f)}`);
  };
  bad("zz\r\n", /not hex/);
  bad("-1\r\n", /not hex/);
  bad("\r\n", /not hex/);
  bad("1234567890abc\r\n", /not hex/);
  bad("3\r\nabcd\r\n", /longer than its size/);
  bad("1".repeat(5000), /over 4096 bytes/);
  bad(`0\r\n${"X: y\r\n".repeat(3000)}`, /trailers over/);
});
