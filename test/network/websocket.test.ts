/**
 * Issue 10: a WebSocket through an exposed port stays open for 60 s of pings. The guest runs
 * test/fixtures/ws-echo.c (built static here, uploaded through the files API, started in its own
 * session so the exec that starts it can end); the test connects to the machine's exposed port on
 * 127.0.0.1 of its own host namespace (netns.ts), sends one ping a second for 60 s and one text
 * message every 10 s, and expects every one answered, in order, on the same connection.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { after, before, test } from "node:test";
import { vmSkipReason } from "../api/helpers.js";
import { startNetDaemon, type NetDaemon, type NetMachine } from "./daemon.js";
import { inTestNetns, netnsSkipReason } from "./netns.js";
import { buildStaticFixture, staticFixtureSkipReason, type Built } from "./static-fixture.js";
import { Op, WsClient } from "./ws-client.js";

const net = await inTestNetns(import.meta.url);
const skip = netnsSkipReason() ?? vmSkipReason() ?? staticFixtureSkipReason() ?? false;
const GUEST_PORT = 8765;
const PINGS = 60;
/** A pong later than this is a stall, not scheduling noise (TCG guest, shared cores). */
const PONG_MS = 5000;

let nd: NetDaemon | undefined;
let built: Built | undefined;
let vm: NetMachine;

before(async () => {
  if (!net || skip) return;
  built = await buildStaticFixture("ws-echo");
  nd = await startNetDaemon();
  vm = await nd.boot({ exposed_ports: [{ guest_port: GUEST_PORT }] });
  await nd.upload(vm.id, "/tmp/ws-echo", await readFile(built.path), "0755");
  // setsid: its own session and process group, which the exec's end does not kill.
  const r = await nd.sh(vm.id, `setsid /tmp/ws-echo ${GUEST_PORT} </dev/null >/tmp/ws-echo.log 2>&1 &`);
  assert.equal(r.exit_code, 0, `start ws-echo: ${r.stdout}${r.stderr}`);
});

after(async () => {
  try {
    await nd?.close();
  } finally {
    await built?.remove();
  }
});

/** Connects through the exposed port, retried while ws-echo starts in the guest. */
async function connect(): Promise<WsClient> {
  const port = vm.exposed_ports.find((p) => p.guest_port === GUEST_PORT);
  assert.ok(port, `no exposed port for ${GUEST_PORT}: ${JSON.stringify(vm.exposed_ports)}`);
  let last = "";
  for (const deadline = Date.now() + 20_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 250))) {
    try {
      return await WsClient.connect(port.host_ip, port.host_port, 5000);
    } catch (err) {
      last = (err as Error).message;
    }
  }
  const log = await nd!.sh(vm.id, "cat /tmp/ws-echo.log; ps");
  throw new Error(`no WebSocket through ${port.host_ip}:${port.host_port} in 20 s: ${last}; guest: ${log.stdout}`);
}

test("a WebSocket through an exposed port stays open for 60 s of pings, each answered", { skip, timeout: 180_000 }, async (t) => {
  const ws = await connect();
  try {
    const started = Date.now();
    const lateness: number[] = [];
    for (let i = 0; i < PINGS; i++) {
      const due = started + i * 1000;
      await new Promise((r) => setTimeout(r, Math.max(0, due - Date.now())));
      const sent = Date.now();
      ws.send(Op.ping, `ping ${i}`);
      const pong = await ws.next(PONG_MS, `the pong of ping ${i} (${Math.round((sent - started) / 1000)} s in)`);
      assert.deepEqual([pong.opcode, pong.payload.toString()], [Op.pong, `ping ${i}`]);
      lateness.push(Date.now() - sent);
      if (i % 10 === 9) {
        ws.send(Op.text, `message ${i}`);
        const echo = await ws.next(PONG_MS, `the echo of message ${i}`);
        assert.deepEqual([echo.opcode, echo.payload.toString()], [Op.text, `message ${i}`]);
      }
    }
    assert.ok(Date.now() - started >= (PINGS - 1) * 1000, "the connection was held for the whole minute");
    ws.send(Op.close, Buffer.from([0x03, 0xe8]));
    assert.equal((await ws.next(PONG_MS, "the close answer")).opcode, Op.close);
    lateness.sort((a, b) => a - b);
    t.diagnostic(`pong round trip: p50 ${lateness[PINGS >> 1]} ms, max ${lateness[PINGS - 1]} ms`);
  } finally {
    ws.destroy();
  }
});
