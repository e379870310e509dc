/**
 * SECRETS (docs/agent-protocol.md, "secrets") against the real agent binary, outside a VM: every
 * entry is checked before anything happens (EINVAL, E2BIG), and an agent that is not PID 1 refuses
 * a valid request with EPERM instead of mounting over the host's /run/secrets. What a guest's
 * PID 1 does with one is tested in a VM (test/api/secrets-vm.test.ts).
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { after, before, test } from "node:test";
import type { FieldValue } from "../../src/agent/codec.js";
import { MsgType, Tag } from "../../src/agent/protocol.js";
import { Agent, buildAgent, cleanupAll, type Conn, Errno, expectErrno } from "./harness.js";

const EPERM = 1;
const E2BIG = 7;
let agent: Agent;
let conn: Conn;

before(async () => {
  buildAgent();
  agent = await Agent.start();
  conn = await agent.connect();
});
after(async () => {
  conn?.close();
  await cleanupAll();
});

const secrets = (fields: Array<[number, FieldValue]>) => conn.request(MsgType.SECRETS, fields);

test("an entry that is not NAME=value with an env-style NAME is EINVAL", async () => {
  for (const entry of ["NOVALUE", "=v", "1A=v", "A-B=v", "../x=v", ".A=v", "A/B=v", "A.B=v", `${"N".repeat(129)}=v`]) {
    const e = await expectErrno(secrets([[Tag.ENV, "OK=1"], [Tag.ENV, entry]]), Errno.EINVAL);
    assert.match(e.message, /NAME=value/, entry);
  }
  const nul = await expectErrno(secrets([[Tag.USER, "ro\0ot"]]), Errno.EINVAL);
  assert.match(nul.message, /USER contains a NUL/);
});

test("more than 256 entries is E2BIG", async () => {
  const many: Array<[number, FieldValue]> = Array.from({ length: 257 }, (_, i) => [Tag.ENV, `S${i}=v`]);
  await expectErrno(secrets(many), E2BIG);
});

test("a valid request to an agent that is not PID 1 is EPERM, and nothing is mounted or written", async () => {
  const before = existsSync("/run/secrets");
  const e = await expectErrno(secrets([[Tag.ENV, "A=1"], [Tag.ENV, "B="]]), EPERM);
  assert.match(e.message, /PID 1/);
  assert.equal(existsSync("/run/secrets"), before);
  // The connection goes on.
  await expectErrno(secrets([[Tag.ENV, "bad-name=1"]]), Errno.EINVAL);
});
