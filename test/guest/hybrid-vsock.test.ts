/**
 * The agent protocol end to end over Firecracker's hybrid vsock: connectHybridVsock talks to a
 * stand-in for Firecracker's uds (test/vmm/hybrid-vsock-server.ts) that bridges to a real
 * `hf-agent --unix` process in place of the guest's AF_VSOCK listener.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { AgentClient } from "../../src/agent/client.js";
import { AGENT_VSOCK_PORT, connectHybridVsock } from "../../src/vmm/firecracker/vsock.js";
import { type Behaviour, HybridVsockServer } from "../vmm/hybrid-vsock-server.js";
import { Agent, buildAgent, cleanupAll, GUEST_DIR, sleep, tempDir } from "./harness.js";

const servers: HybridVsockServer[] = [];
const clients: AgentClient[] = [];

before(() => buildAgent());
after(async () => {
  for (const c of clients) c.close();
  await Promise.all(servers.map((s) => s.close()));
  await cleanupAll();
});

async function standIn(b: () => Behaviour): Promise<HybridVsockServer> {
  const s = await HybridVsockServer.listen(join(tempDir("hf-hvsock-"), "v.sock"), b);
  servers.push(s);
  return s;
}

async function connectAgent(srv: HybridVsockServer): Promise<AgentClient> {
  const c = await AgentClient.connect(await connectHybridVsock(srv.path, AGENT_VSOCK_PORT, { timeoutMs: 10_000 }), { timeoutMs: 10_000 });
  clients.push(c);
  return c;
}

/** HELLO is done by connect; then an exec and a file round trip through the bridge. */
async function exercise(c: AgentClient): Promise<void> {
  const r = await c.exec(["echo", "hi"]);
  assert.equal(r.exitCode, 0);
  assert.equal(r.stdout.toString(), "hi\n");
  const path = join(tempDir(), "f.bin");
  const data = Buffer.from("over hybrid vsock\n".repeat(5000));
  assert.equal(await c.writeFile(path, data), data.length);
  assert.ok((await c.readFile(path)).equals(data));
  assert.ok(readFileSync(path).equals(data), "the agent wrote the file we sent");
}

test("the host port constant is the guest agent's HF_VSOCK_PORT", () => {
  const m = /#define HF_VSOCK_PORT (\d+)u?/.exec(readFileSync(join(GUEST_DIR, "agent/proto.h"), "utf8"));
  assert.ok(m);
  assert.equal(Number(m[1]), AGENT_VSOCK_PORT);
});

test("HELLO, exec and files run through the hybrid vsock handshake to a real hf-agent", async () => {
  const agent = await Agent.start();
  const srv = await standIn(() => ({ kind: "backend", path: agent.socketPath }));
  await exercise(await connectAgent(srv));
  assert.equal(srv.requests[0]!.port, AGENT_VSOCK_PORT);
});

test("the agent's READY arriving in the same write as OK is not lost", async () => {
  const agent = await Agent.start();
  const srv = await standIn(() => ({ kind: "backend", path: agent.socketPath, coalesceFirstChunk: true }));
  await exercise(await connectAgent(srv));
});

test("a guest whose agent is not listening yet is retried until it is", async () => {
  const guest: { agent?: Agent } = {};
  const srv = await standIn(() => (guest.agent ? { kind: "backend", path: guest.agent.socketPath } : { kind: "close" }));
  const client = connectAgent(srv);
  await sleep(300);
  guest.agent = await Agent.start();
  await exercise(await client);
  assert.ok(srv.requests.length > 1, `expected refused attempts before the agent came up, got ${srv.requests.length}`);
});
