/**
 * The agent's AF_VSOCK path (listen on port 1024, accept, serve), run for real in a QEMU VM (TCG).
 * This host has no vhost-vsock, so the VM has no vsock device; with `hf.vsock_loopback=1` on the
 * kernel command line hf-init loads the kernel's vsock_loopback transport and the agent listens on
 * vsock beside virtio-serial. A guest process can then connect to CID 1 (VMADDR_CID_LOCAL) port
 * 1024: the test runs /usr/bin/hf-vsock-pipe through an ordinary exec over virtio-serial, with
 * agent protocol frames built by the host's codec as its stdin and the agent's replies, parsed by
 * the host's decoder, on its stdout.
 *
 * The frames go in all at once, but the tool's stdin must not reach EOF before the replies are
 * out: EOF makes the tool half-close the socket, which the agent reads as the host going away
 * (it kills that connection's execs and drops unsent output). So the exec is
 * `{ cat; exec sleep 600; } | hf-vsock-pipe 1 1024`: `sleep` holds the pipe open after `cat`
 * has passed the frames on, and the test kills the exec (its process group) once every reply it
 * waits for has arrived, which closes the connection as a crashed host would.
 *
 * Guest assets come from HYPERFLEET_DATA_DIR (default /var/lib/hyperfleet) and must be built from
 * this tree (`npm run setup`): the full initramfs with vsock_loopback, the base disk with the tool.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import type { AgentClient, ExecOutcome } from "../../src/agent/client.js";
import { decodeFields, encodeFields, encodeFrame, FrameDecoder, type Frame } from "../../src/agent/codec.js";
import { DATA_CHUNK, FLAG_END, MsgType, PROTOCOL_VERSION, Tag } from "../../src/agent/protocol.js";
import { isHyperfleetError } from "../../src/core/errors.js";
import { loadGuestAssets, VSOCK_LOOPBACK_ARG, type GuestAssets } from "../../src/assets/index.js";
import { Machine } from "../../src/embed/machine.js";
import { hostTscKhz } from "../../src/vmm/host.js";
import { buildKernelArgs } from "../../src/vmm/kernel-args.js";
import { dataDir, leftoverQemu, tempRunDir } from "../integration/helpers.js";

const AGENT_PORT = 1024;
/** Bounds the wait for replies; a healthy round trip takes well under a second even under TCG. */
const REPLIES_TIMEOUT_MS = 30_000;

async function boot(assets: GuestAssets, extra: string | undefined): Promise<Machine> {
  const tsc = hostTscKhz();
  const kernelArgs = buildKernelArgs({ hostname: "vsockloop", ...(tsc !== null && { tscKhz: tsc }), ...(extra !== undefined && { extra }) });
  // The full initramfs: the basic one (no NIC, no vsock) ships no vsock modules.
  const m = new Machine({ vcpuCount: 1, memSizeMib: 256, dataDir: dataDir(), runDir: await tempRunDir(), initrdPath: assets.initramfs, kernelArgs });
  (await m.start({ timeoutMs: 60_000 })).unwrap();
  return m;
}

function agentOf(m: Machine): AgentClient {
  const a = m.agentClient;
  assert.ok(a, "the machine has an agent connection");
  return a;
}

async function sh(agent: AgentClient, script: string): Promise<ExecOutcome> {
  return agent.exec(["sh", "-c", script], { timeoutMs: 20_000, maxOutputBytes: 64 * 1024 });
}

const hello = (nonce: Buffer): Buffer => encodeFrame(MsgType.HELLO, 0, 0, encodeFields([[Tag.VERSION, { u32: PROTOCOL_VERSION }], [Tag.NONCE, nonce]]));
const execFrame = (id: number, argv: string[]): Buffer => encodeFrame(MsgType.EXEC, 0, id, encodeFields([...argv.map((a) => [Tag.ARG, a] as const), [Tag.STDIN, { u8: 0 }]]));
const readFrame = (id: number, path: string): Buffer => encodeFrame(MsgType.READ, 0, id, encodeFields([[Tag.PATH, path]]));

/** WRITE then its DATA frames, DATA_CHUNK bytes each as the host client sends them, END on the last. */
function writeFrames(id: number, path: string, data: Buffer): Buffer[] {
  const out = [encodeFrame(MsgType.WRITE, 0, id, encodeFields([[Tag.PATH, path]]))];
  for (let off = 0; off < data.length; off += DATA_CHUNK) {
    const end = Math.min(off + DATA_CHUNK, data.length);
    out.push(encodeFrame(MsgType.DATA, end === data.length ? FLAG_END : 0, id, data.subarray(off, end)));
  }
  return out;
}

/** True once `frames` hold the last frame of operation `id` (END on an answer, or an ERROR). */
function ended(frames: readonly Frame[], id: number): boolean {
  return frames.some((f) => f.id === id && (f.type === MsgType.ERROR || f.type === MsgType.EXIT || f.type === MsgType.OK || (f.type === MsgType.DATA && (f.flags & FLAG_END) !== 0)));
}

interface VsockSession {
  frames: Frame[];
  /** From the exec's start to the last awaited reply. */
  ms: number;
  /** The exec of the tool, ended by the test (SIGKILL to its process group). */
  outcome: ExecOutcome;
}

/**
 * Runs hf-vsock-pipe in the guest with `input` as its stdin and decodes what it prints until
 * `complete(frames)` holds, then kills it. Fails if the tool exits first or the replies do not come.
 */
async function overVsock(agent: AgentClient, input: Buffer, complete: (frames: Frame[]) => boolean, whileOpen?: () => Promise<void>): Promise<VsockSession> {
  const decoder = new FrameDecoder();
  const frames: Frame[] = [];
  const stop = new AbortController();
  let stderr = "";
  let satisfied!: () => void;
  const replies = new Promise<void>((resolve) => (satisfied = resolve));
  const run = agent.exec(["sh", "-c", `{ cat; exec sleep 600; } | exec hf-vsock-pipe 1 ${AGENT_PORT}`], {
    stdin: input,
    timeoutMs: 120_000,
    signal: stop.signal,
    onStdout: (chunk) => {
      frames.push(...decoder.push(chunk));
      if (complete(frames)) satisfied();
    },
    onStderr: (chunk) => (stderr += chunk.toString()),
  });
  const t0 = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), REPLIES_TIMEOUT_MS)));
  const first = await Promise.race([replies.then(() => "replies" as const), run.then(() => "exited" as const), deadline]);
  clearTimeout(timer);
  const ms = Date.now() - t0;
  try {
    if (first === "replies") await whileOpen?.();
  } finally {
    stop.abort();
  }
  const outcome = await run;
  const seen = frames.map((f) => `${f.type.toString(16)}/${f.id}`).join(" ");
  assert.equal(first, "replies", `the replies did not all arrive (${first}); frames seen: [${seen}]; tool stderr: ${stderr}`);
  return { frames, outcome, ms };
}

const ofOp = (frames: readonly Frame[], id: number, type: number): Frame[] => frames.filter((f) => f.id === id && f.type === type);
const bytesOf = (frames: readonly Frame[]): Buffer => Buffer.concat(frames.map((f) => f.payload));

/** The agent's open sockets (its vsock listener and connections; virtio-serial is a device file). */
async function agentSockets(agent: AgentClient): Promise<number> {
  const r = await sh(agent, "ls -l /proc/1/fd | grep -c 'socket:' || true");
  return Number(r.stdout.toString().trim());
}

describe("agent over guest vsock (vsock_loopback, real VM)", { timeout: 240_000 }, () => {
  let assets: GuestAssets;
  let m: Machine;
  let agent: AgentClient;

  before(async () => {
    assets = await loadGuestAssets(dataDir());
    assert.ok(assets.modules.includes("vsock_loopback"), `the initramfs in ${dataDir()} has no vsock_loopback: rebuild the guest assets from this tree (npm run setup)`);
    m = await boot(assets, VSOCK_LOOPBACK_ARG);
    agent = agentOf(m);
  });
  after(async () => {
    await m?.destroy();
    assert.deepEqual(await leftoverQemu(), []);
  });

  test("the switch loaded vsock_loopback and the tool is in the root disk", async () => {
    const r = await sh(agent, "grep -o '^vsock_loopback' /proc/modules; test -c /dev/vsock && echo dev; test -x /usr/bin/hf-vsock-pipe && echo tool");
    assert.equal(r.stdout.toString(), "vsock_loopback\ndev\ntool\n", r.stderr.toString());
  });

  test("HELLO, exec, READ and WRITE over the guest's vsock give the answers virtio-serial gives", async (t) => {
    const big = randomBytes(1536 * 1024 + 17); // several DATA frames, more than the tool's buffers
    await agent.writeFile("/tmp/vsock-src.bin", big);
    const upload = randomBytes(700 * 1024 + 3);
    const nonce = randomBytes(8);
    const input = Buffer.concat([
      hello(nonce),
      execFrame(1, ["echo", "over vsock"]),
      readFrame(2, "/tmp/vsock-src.bin"),
      ...writeFrames(3, "/tmp/vsock-up.bin", upload),
      readFrame(4, "/no/such/file"),
    ]);
    const { frames, ms } = await overVsock(agent, input, (fs) => [1, 2, 3, 4].every((id) => ended(fs, id)));
    t.diagnostic(`${input.length} bytes of frames in, ${frames.length} frames out, all answers in ${ms} ms`);

    // READY on accept, then the HELLO reply with our nonce: what the serial client got.
    assert.equal(frames[0]!.type, MsgType.READY);
    const ready = decodeFields(frames[0]!.payload);
    assert.equal(ready.u32(Tag.VERSION), PROTOCOL_VERSION);
    assert.equal(ready.str(Tag.AGENT_VERSION), agent.agentVersion);
    const replies = ofOp(frames, 0, MsgType.HELLO);
    assert.equal(replies.length, 1);
    const reply = decodeFields(replies[0]!.payload);
    assert.equal(reply.u32(Tag.VERSION), agent.version);
    assert.equal(reply.str(Tag.AGENT_VERSION), agent.agentVersion);
    assert.ok(reply.raw(Tag.NONCE)?.equals(nonce), "the reply echoes our nonce");

    const serialEcho = await agent.exec(["echo", "over vsock"]);
    assert.equal(ofOp(frames, 1, MsgType.EXEC_STARTED).length, 1);
    assert.equal(bytesOf(ofOp(frames, 1, MsgType.STDOUT)).toString(), serialEcho.stdout.toString());
    assert.equal(serialEcho.stdout.toString(), "over vsock\n");
    const exit = decodeFields(ofOp(frames, 1, MsgType.EXIT)[0]!.payload);
    assert.equal(exit.i32(Tag.EXIT_CODE), serialEcho.exitCode);
    assert.equal(exit.u32(Tag.SIGNAL), 0);

    const read = ofOp(frames, 2, MsgType.DATA);
    assert.ok(read.length > 1, `a ${big.length}-byte READ comes in several DATA frames`);
    assert.ok(bytesOf(read).equals(await agent.readFile("/tmp/vsock-src.bin")), "READ over vsock = READ over serial");
    assert.ok(bytesOf(read).equals(big));

    const ok = ofOp(frames, 3, MsgType.OK);
    assert.equal(ok.length, 1, `WRITE answered: ${JSON.stringify(ofOp(frames, 3, MsgType.ERROR).map((f) => decodeFields(f.payload).str(Tag.MESSAGE)))}`);
    assert.equal(decodeFields(ok[0]!.payload).u64(Tag.SIZE), BigInt(upload.length));
    assert.ok((await agent.readFile("/tmp/vsock-up.bin")).equals(upload), "the file written over vsock, read over serial");

    // An error is the same error: ENOENT (2), which the serial client maps to FILE_NOT_FOUND.
    const err = decodeFields(ofOp(frames, 4, MsgType.ERROR)[0]!.payload);
    assert.equal(err.u32(Tag.ERRNO), 2);
    await assert.rejects(agent.readFile("/no/such/file"), (e) => isHyperfleetError(e, "FILE_NOT_FOUND"));
  });

  test("a second connection works after the first closes, and the agent lets go of the first", async (t) => {
    const baseline = await agentSockets(agent);
    t.diagnostic(`the agent holds ${baseline} sockets without a vsock connection`);
    for (const round of [1, 2]) {
      const nonce = randomBytes(8);
      const input = Buffer.concat([hello(nonce), execFrame(7, ["echo", `round ${round}`])]);
      const open = async (): Promise<void> => assert.equal(await agentSockets(agent), baseline + 1, "the connection is one more socket in the agent");
      const { frames, outcome, ms } = await overVsock(agent, input, (fs) => ended(fs, 7), open);
      t.diagnostic(`round ${round}: HELLO and an exec answered in ${ms} ms`);
      assert.ok(decodeFields(ofOp(frames, 0, MsgType.HELLO)[0]!.payload).raw(Tag.NONCE)?.equals(nonce));
      assert.equal(bytesOf(ofOp(frames, 7, MsgType.STDOUT)).toString(), `round ${round}\n`);
      assert.equal(outcome.signal, 9, "the test ended the tool");
      // The tool's socket is closed by its death; the agent sees the connection end and closes
      // its side (asynchronously: the loopback transport delivers the close from a workqueue).
      let now = await agentSockets(agent);
      for (let i = 0; i < 100 && now !== baseline; i++) {
        await new Promise((r) => setTimeout(r, 50));
        now = await agentSockets(agent);
      }
      assert.equal(now, baseline, `round ${round}: the agent holds ${now} sockets, ${baseline} before`);
    }
  });

  test("a connection to another port is refused, and the agent's port still answers", async (t) => {
    const r = await sh(agent, `hf-vsock-pipe 1 ${AGENT_PORT + 1} </dev/null`);
    t.diagnostic(r.stderr.toString().trim());
    assert.equal(r.exitCode, 1);
    assert.match(r.stderr.toString(), /^hf-vsock-pipe: connect to cid 1 port 1025: (Connection reset by peer|Connection refused)\n$/);
    assert.equal(r.stdout.length, 0);
    const nonce = randomBytes(8);
    const { frames } = await overVsock(agent, hello(nonce), (fs) => ofOp(fs, 0, MsgType.HELLO).length === 1);
    assert.ok(decodeFields(ofOp(frames, 0, MsgType.HELLO)[0]!.payload).raw(Tag.NONCE)?.equals(nonce));
  });

  test("hf-vsock-pipe: stdin at EOF half-closes, the agent ends the connection after READY, the tool exits 0", async () => {
    const r = await agent.exec(["hf-vsock-pipe", "1", String(AGENT_PORT)], { timeoutMs: 20_000, maxOutputBytes: 64 * 1024 });
    assert.equal(r.exitCode, 0, r.stderr.toString());
    const frames = new FrameDecoder().push(r.stdout);
    assert.deepEqual(frames.map((f) => f.type), [MsgType.READY]);
    assert.equal(r.stdout.length, 12 + frames[0]!.payload.length, "nothing after READY");
  });

  test("hf-vsock-pipe: bad arguments exit 2 with the usage", async () => {
    for (const args of [[], ["1"], ["1", "x"], ["-1", "1024"], ["1", "4294967296"], ["1", "1024", "extra"]]) {
      const r = await agent.exec(["hf-vsock-pipe", ...args], { timeoutMs: 20_000 });
      assert.equal(r.exitCode, 2, `args ${JSON.stringify(args)}`);
      assert.match(r.stderr.toString(), /^usage: hf-vsock-pipe CID PORT/);
    }
  });
});

describe("without hf.vsock_loopback=1 (real VM)", { timeout: 120_000 }, () => {
  let m: Machine;

  before(async () => {
    m = await boot(await loadGuestAssets(dataDir()), undefined);
  });
  after(async () => {
    await m?.destroy();
    assert.deepEqual(await leftoverQemu(), []);
  });

  test("nothing changes: no vsock module, no /dev/vsock, no listener to reach", async () => {
    const agent = agentOf(m);
    const r = await sh(agent, "grep -c vsock /proc/modules; test -e /dev/vsock && echo dev; true");
    assert.equal(r.stdout.toString(), "0\n", r.stderr.toString());
    const c = await sh(agent, `hf-vsock-pipe 1 ${AGENT_PORT} </dev/null`);
    assert.equal(c.exitCode, 1);
    assert.match(c.stderr.toString(), /^hf-vsock-pipe: socket\(AF_VSOCK\): Address family not supported by protocol\n$/);
  });
});
