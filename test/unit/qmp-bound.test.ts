/**
 * The QMP client keeps at most one line of QEMU's output (QMP_MAX_LINE) while it waits for a
 * newline: a peer on the QMP socket that never ends a line cannot grow the daemon's memory. The
 * peer here is a UNIX socket speaking QMP's framing, since QEMU itself never sends such a line.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { QMP_MAX_LINE, QmpClient } from "../../src/vmm/qemu/qmp.js";

test("qmp: an endless line is dropped, not buffered, and the next reply is still read", async () => {
  const dir = await mkdtemp(join(tmpdir(), "hf-qmp-"));
  const path = join(dir, "qmp.sock");
  let peer: Socket | undefined;
  let junkSent!: () => void;
  const sent = new Promise<void>((r) => (junkSent = r));
  const server = createServer((s) => {
    peer = s;
    s.write('{"QMP": {"version": {}}}\n');
    let n = 0;
    s.on("data", () => {
      n++;
      if (n === 1) s.write('{"return": {}}\n'); // qmp_capabilities
      else {
        // 8 lines' worth of one line without a newline, in pieces; the end comes when the test says.
        const junk = "x".repeat(64 * 1024);
        for (let i = 0; i < (8 * QMP_MAX_LINE) / junk.length; i++) s.write(junk);
        s.write("", () => junkSent());
      }
    });
  });
  await new Promise<void>((r) => server.listen(path, r));
  try {
    const c = await QmpClient.connect(path);
    const reply = c.execute<{ status: string }>("query-status");
    await sent;
    // Let the client read everything the peer wrote (loopback: a few event-loop turns).
    await new Promise((r) => setTimeout(r, 200));
    const buffered = (c as unknown as { buf: string }).buf.length;
    assert.ok(buffered <= QMP_MAX_LINE, `at most one line kept while no newline comes (${buffered} bytes)`);
    peer!.write('\n{"return": {"status": "running"}}\n');
    assert.equal((await reply).status, "running", "the reply after the dropped line is read");
    c.close();
  } finally {
    peer?.destroy();
    await new Promise((r) => server.close(r));
    await rm(dir, { recursive: true, force: true });
  }
});
