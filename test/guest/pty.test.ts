/**
 * Black-box tests of EXEC with FLAGS PTY and FLOW, RESIZE and CREDIT (docs/agent-protocol.md,
 * "exec with a terminal" and "flow control") against the real hf-agent over --unix.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { decodeFields, type FieldValue, type Frame } from "../../src/agent/codec.js";
import { ExecFlags, FLAG_END, MsgType, Tag } from "../../src/agent/protocol.js";
import { Agent, asError, buildAgent, cleanupAll, type Conn, Errno, expectErrno, sleep } from "./harness.js";

let agent: Agent;
let conn: Conn;

before(async () => {
  buildAgent();
  agent = await Agent.start();
  conn = await agent.connect();
});
after(async () => {
  conn.close();
  await cleanupAll();
});

/** A running exec whose frames are read as they come. */
class Running {
  out = Buffer.alloc(0);
  stderrFrames = 0;
  exit: { code: number; signal: number } | null = null;

  constructor(
    readonly id: number,
    readonly pid: number,
  ) {}

  /** Reads frames until `until` holds (or EXIT); fails after timeoutMs. */
  async pump(until: () => boolean, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!until()) {
      if (this.exit) throw new Error(`exec ended (${JSON.stringify(this.exit)}) before the condition held; output: ${JSON.stringify(this.out.toString())}`);
      const f = await conn.next(this.id, Math.max(1, deadline - Date.now()));
      this.take(f);
    }
  }

  /** Frames already received, without waiting. */
  drainPending(): void {
    const q = conn.pending(this.id);
    while (q.length) this.take(q.shift()!);
  }

  async waitExit(timeoutMs = 10_000): Promise<{ code: number; signal: number }> {
    const deadline = Date.now() + timeoutMs;
    while (!this.exit) this.take(await conn.next(this.id, Math.max(1, deadline - Date.now())));
    return this.exit;
  }

  private take(f: Frame): void {
    if (f.type === MsgType.STDOUT) this.out = Buffer.concat([this.out, f.payload]);
    else if (f.type === MsgType.STDERR) this.stderrFrames++;
    else if (f.type === MsgType.EXIT) {
      const x = decodeFields(f.payload);
      this.exit = { code: x.i32(Tag.EXIT_CODE)!, signal: x.u32(Tag.SIGNAL)! };
    } else if (f.type === MsgType.ERROR) throw asError(f);
    else throw new Error(`unexpected frame 0x${f.type.toString(16)}`);
  }

  text(): string {
    return this.out.toString();
  }
}

async function start(argv: string[], flags: number, extra: Array<[number, FieldValue]> = []): Promise<Running> {
  const id = conn.allocId();
  const fields: Array<[number, FieldValue]> = argv.map((a) => [Tag.ARG, a]);
  fields.push([Tag.STDIN, { u8: 1 }], [Tag.FLAGS, { u32: flags }], ...extra);
  conn.sendFields(MsgType.EXEC, 0, id, fields);
  const f = await conn.next(id);
  if (f.type === MsgType.ERROR) throw asError(f);
  assert.equal(f.type, MsgType.EXEC_STARTED);
  return new Running(id, decodeFields(f.payload).u32(Tag.PID)!);
}

const size = (rows: number, cols: number): Array<[number, FieldValue]> => [
  [Tag.ROWS, { u32: rows }],
  [Tag.COLS, { u32: cols }],
];

test("PTY: the child's stdin, stdout and stderr are one terminal of the requested size; no STDERR frames", async () => {
  const r = await start(["sh", "-c", "tty; stty size; echo to-stderr >&2; [ -t 0 ] && [ -t 2 ] && echo all-ttys"], ExecFlags.PTY, size(30, 100));
  const x = await r.waitExit();
  assert.equal(x.code, 0, r.text());
  assert.match(r.text(), /^\/dev\/pts\/\d+\r\n30 100\r\nto-stderr\r\nall-ttys\r\n$/);
  assert.equal(r.stderrFrames, 0);
});

test("PTY without ROWS/COLS is 24x80, and the terminal is the controlling one of a new session", async () => {
  const r = await start(["sh", "-c", "stty size; ps -o sid=,pgid=,tty= -p $$ 2>/dev/null || cat /proc/self/stat"], ExecFlags.PTY);
  await r.waitExit();
  assert.match(r.text(), /^24 80\r\n/);
  // /proc/<pid>/stat field 7 (tty_nr) is non-zero only with a controlling terminal.
  const s = await start(["sh", "-c", "cut -d' ' -f7 /proc/$$/stat"], ExecFlags.PTY);
  await s.waitExit();
  assert.notEqual(s.text().trim(), "0");
});

test("RESIZE changes the window size and the foreground group gets SIGWINCH", async () => {
  const r = await start(["sh", "-c", "trap 'stty size; exit 7' WINCH; echo ready; while :; do sleep 0.05; done"], ExecFlags.PTY, size(10, 20));
  await r.pump(() => r.text().includes("ready"));
  conn.sendFields(MsgType.RESIZE, 0, r.id, size(50, 132));
  const x = await r.waitExit();
  assert.equal(x.code, 7);
  assert.match(r.text(), /50 132\r\n/);
});

test("a malformed RESIZE is ignored and the exec goes on", async () => {
  const r = await start(["sh", "-c", "read line; stty size"], ExecFlags.PTY, size(10, 20));
  conn.sendFields(MsgType.RESIZE, 0, r.id, [[Tag.ROWS, { u32: 0 }], [Tag.COLS, { u32: 5 }]]);
  conn.sendFields(MsgType.RESIZE, 0, r.id, [[Tag.ROWS, { u32: 5 }]]);
  conn.send(MsgType.STDIN, 0, r.id, Buffer.from("go\n"));
  const x = await r.waitExit();
  assert.equal(x.code, 0);
  assert.match(r.text(), /10 20\r\n$/);
});

test("STDIN goes through the line discipline (echoed); END is the EOF character", async () => {
  const r = await start(["cat"], ExecFlags.PTY);
  conn.send(MsgType.STDIN, 0, r.id, Buffer.from("hello\n"));
  await r.pump(() => (r.text().match(/hello/g) ?? []).length >= 2);
  conn.send(MsgType.STDIN, FLAG_END, r.id, Buffer.alloc(0));
  const x = await r.waitExit();
  assert.equal(x.code, 0);
  assert.equal(r.text(), "hello\r\nhello\r\n");
});

test("^C on the terminal interrupts the foreground process (SIGINT); SIGNAL still reaches the group", async () => {
  const r = await start(["sh", "-c", "echo ready; exec sleep 30"], ExecFlags.PTY);
  await r.pump(() => r.text().includes("ready"));
  conn.send(MsgType.STDIN, 0, r.id, Buffer.from([0x03]));
  assert.deepEqual(await r.waitExit(), { code: -1, signal: 2 });

  const s = await start(["sh", "-c", "echo ready; exec sleep 30"], ExecFlags.PTY);
  await s.pump(() => s.text().includes("ready"));
  conn.sendFields(MsgType.SIGNAL, 0, s.id, [[Tag.SIGNAL, { u32: 15 }]]);
  assert.deepEqual(await s.waitExit(), { code: -1, signal: 15 });
});

test("FLOW: no more output than WINDOW until CREDIT, then the rest, in order", async () => {
  const total = 1_000_000;
  const r = await start(["sh", "-c", `head -c ${total} /dev/zero | tr '\\0' x`], ExecFlags.FLOW, [[Tag.WINDOW, { u32: 4096 }]]);
  await r.pump(() => r.out.length >= 4096);
  await sleep(400);
  r.drainPending();
  assert.equal(r.out.length, 4096, "the guest sent beyond its window");
  assert.equal(r.exit, null);
  conn.sendFields(MsgType.CREDIT, 0, r.id, [[Tag.SIZE, { u64: total - 4096 }]]);
  const x = await r.waitExit(30_000);
  assert.equal(x.code, 0);
  assert.equal(r.out.length, total);
  assert.ok(r.out.every((b) => b === 0x78));
});

test("FLOW: output of a process that exited while the host gave no credit is not dropped after the grace period", async () => {
  // 100 KB fits in the pipe: the process exits at once, its output waits for credit.
  const r = await start(["sh", "-c", "head -c 100000 /dev/zero"], ExecFlags.FLOW, [[Tag.WINDOW, { u32: 1000 }]]);
  await r.pump(() => r.out.length >= 1000);
  await sleep(800); // well past the 250 ms grace for grandchildren
  r.drainPending();
  assert.equal(r.exit, null, "EXIT came while output was still waiting for credit");
  conn.sendFields(MsgType.CREDIT, 0, r.id, [[Tag.SIZE, { u64: 1_000_000 }]]);
  const x = await r.waitExit();
  assert.equal(x.code, 0);
  assert.equal(r.out.length, 100000);
});

test("FLOW: CANCEL of an exec whose output waits for credit still ends it with EXIT", async () => {
  // 200 KB fits in the pipe; sleep keeps it open. No credit beyond the first 1000 bytes.
  const r = await start(["sh", "-c", "head -c 200000 /dev/zero; exec sleep 30"], ExecFlags.FLOW, [[Tag.WINDOW, { u32: 1000 }]]);
  await r.pump(() => r.out.length >= 1000);
  conn.send(MsgType.CANCEL, 0, r.id);
  const x = await r.waitExit(5000);
  assert.equal(x.signal, 9);
});

test("PTY and FLOW together: a terminal's output is flow-controlled too", async () => {
  const r = await start(["sh", "-c", "head -c 50000 /dev/zero | tr '\\0' y"], ExecFlags.PTY | ExecFlags.FLOW, [[Tag.WINDOW, { u32: 512 }]]);
  await r.pump(() => r.out.length >= 512);
  await sleep(300);
  r.drainPending();
  assert.equal(r.out.length, 512);
  conn.sendFields(MsgType.CREDIT, 0, r.id, [[Tag.SIZE, { u64: 100_000 }]]);
  await r.waitExit();
  assert.equal(r.out.length, 50000);
});

test("bad PTY/FLOW requests are EINVAL", async () => {
  const exec = (flags: number, extra: Array<[number, FieldValue]> = []) =>
    conn.request(MsgType.EXEC, [[Tag.ARG, "true"], [Tag.FLAGS, { u32: flags }], ...extra]);
  await expectErrno(exec(ExecFlags.PTY | ExecFlags.DETACHED), Errno.EINVAL);
  await expectErrno(exec(ExecFlags.FLOW | ExecFlags.DETACHED, [[Tag.WINDOW, { u32: 10 }]]), Errno.EINVAL);
  await expectErrno(exec(ExecFlags.PTY, [[Tag.ROWS, { u32: 0 }]]), Errno.EINVAL);
  await expectErrno(exec(ExecFlags.PTY, [[Tag.COLS, { u32: 65536 }]]), Errno.EINVAL);
  await expectErrno(exec(0, size(10, 10)), Errno.EINVAL);
  await expectErrno(exec(ExecFlags.FLOW), Errno.EINVAL);
  await expectErrno(exec(ExecFlags.FLOW, [[Tag.WINDOW, { u32: 0 }]]), Errno.EINVAL);
  await expectErrno(exec(0, [[Tag.WINDOW, { u32: 10 }]]), Errno.EINVAL);
  await expectErrno(exec(8), Errno.EINVAL);
});
