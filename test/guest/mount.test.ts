/**
 * Black-box tests of MOUNT (docs/agent-protocol.md, "mount") against the real hf-agent running as
 * PID 1 of its own user and mount namespaces (harness.ts pid1Argv), so its mounts never reach the
 * host. tmpfs stands in for a volume's ext4 disk (a user namespace may not mount ext4); the ext4
 * path, found by its virtio serial, is tested in a real VM by test/api/volumes.test.ts.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { MountFlags, MsgType, Tag } from "../../src/agent/protocol.js";
import type { FieldValue } from "../../src/agent/codec.js";
import { Agent, buildAgent, cleanupAll, type Conn, Errno, expectErrno, pid1Argv, tempDir } from "./harness.js";

let agent: Agent | null = null;
let conn: Conn;
let dir: string;

const available = pid1Argv("/dev/null") !== null;
const skip = () => (available ? false : "user namespaces are not available here");
const ENODEV = 19;
const EROFS = 30;
const ENAMETOOLONG = 36;

before(async () => {
  if (!available) return;
  buildAgent();
  agent = await Agent.startAsPid1();
  conn = await agent!.connect();
  // Not under /tmp: the PID 1 agent mounts its own tmpfs there.
  dir = tempDir("hf-agent-mount-", "/var/tmp");
});
after(async () => {
  conn?.close();
  await cleanupAll();
});

function mount(fields: Array<[number, FieldValue]>) {
  return conn.request(MsgType.MOUNT, fields);
}

async function mountsAt(target: string): Promise<string[]> {
  const r = await conn.exec(["sh", "-c", `grep ' ${target} ' /proc/mounts || true`]);
  return r.stdout.toString().trim().split("\n").filter((l) => l !== "");
}

test("MOUNT creates the target with its parents and mounts there; the guest writes to it", { skip: skip() }, async () => {
  const target = `${dir}/deep/er/data`;
  const f = await mount([[Tag.PATH, target], [Tag.FSTYPE, "tmpfs"], [Tag.SOURCE, "tmpfs"]]);
  assert.equal(f.type, MsgType.OK);
  const lines = await mountsAt(target);
  assert.equal(lines.length, 1, lines.join("|"));
  assert.match(lines[0]!, /^tmpfs \S+ tmpfs rw,nosuid,nodev/);
  const r = await conn.exec(["sh", "-c", `echo hello > ${target}/f && cat ${target}/f`]);
  assert.equal(r.stdout.toString(), "hello\n");
});

test("MOUNT with FLAGS RDONLY: the mount is read-only and a write fails with EROFS", { skip: skip() }, async () => {
  const target = `${dir}/ro`;
  await mount([[Tag.PATH, target], [Tag.FSTYPE, "tmpfs"], [Tag.SOURCE, "tmpfs"], [Tag.FLAGS, { u32: MountFlags.RDONLY }]]);
  assert.match((await mountsAt(target))[0] ?? "", /^tmpfs \S+ tmpfs ro,/);
  await expectErrno(conn.writeFile(`${target}/f`, Buffer.from("x")), EROFS);
  const r = await conn.exec(["sh", "-c", `echo x > ${target}/g`]);
  assert.notEqual(r.exitCode, 0);
  assert.match(r.stderr.toString(), /Read-only file system/);
});

test("MOUNT by SERIAL: no disk with that serial is ENODEV, and nothing is mounted", { skip: skip() }, async () => {
  const target = `${dir}/by-serial`;
  const e = await expectErrno(mount([[Tag.PATH, target], [Tag.FSTYPE, "ext4"], [Tag.SERIAL, "hfvol-absent"]]), ENODEV);
  assert.match(e.message, /hfvol-absent/);
  assert.deepEqual(await mountsAt(target), []);
});

test("MOUNT refuses bad requests with EINVAL or ENAMETOOLONG before touching anything", { skip: skip() }, async () => {
  const ok: Array<[number, FieldValue]> = [[Tag.FSTYPE, "tmpfs"], [Tag.SOURCE, "tmpfs"]];
  await expectErrno(mount(ok), Errno.EINVAL); // no PATH
  for (const target of ["relative/x", "/", "//", `${dir}/a/../b`, `${dir}/..`, ""]) {
    await expectErrno(mount([[Tag.PATH, target], ...ok]), Errno.EINVAL);
  }
  await expectErrno(mount([[Tag.PATH, `${dir}/x`], [Tag.SOURCE, "tmpfs"]]), Errno.EINVAL); // no FSTYPE
  await expectErrno(mount([[Tag.PATH, `${dir}/x`], [Tag.FSTYPE, "tmpfs"]]), Errno.EINVAL); // neither SOURCE nor SERIAL
  await expectErrno(mount([[Tag.PATH, `${dir}/x`], ...ok, [Tag.SERIAL, "hfvol0"]]), Errno.EINVAL); // both
  await expectErrno(mount([[Tag.PATH, `${dir}/x`], ...ok, [Tag.FLAGS, { u32: 2 }]]), Errno.EINVAL);
  await expectErrno(mount([[Tag.PATH, `${dir}/x`], [Tag.FSTYPE, "ext4"], [Tag.SERIAL, "../../dev/sda"]]), Errno.EINVAL);
  await expectErrno(mount([[Tag.PATH, `${dir}/x`], [Tag.FSTYPE, "ext4"], [Tag.SERIAL, "x".repeat(21)]]), ENAMETOOLONG);
  await expectErrno(mount([[Tag.PATH, `${dir}/x`], [Tag.FSTYPE, "x".repeat(32)], [Tag.SOURCE, "tmpfs"]]), ENAMETOOLONG);
  await expectErrno(mount([[Tag.PATH, `${dir}/x\0y`], ...ok]), Errno.EINVAL);
  // None of them created the target.
  const r = await conn.exec(["sh", "-c", `test -e ${dir}/x && echo exists || echo absent`]);
  assert.equal(r.stdout.toString(), "absent\n");
});

test("MOUNT with USER: an unknown user is EINVAL before anything is mounted; root's fresh filesystem stays root's", { skip: skip() }, async () => {
  const target = `${dir}/owned`;
  const e = await expectErrno(mount([[Tag.PATH, target], [Tag.FSTYPE, "tmpfs"], [Tag.SOURCE, "tmpfs"], [Tag.USER, "no-such-user-hf"]]), Errno.EINVAL);
  assert.match(e.message, /unknown user/);
  assert.deepEqual(await mountsAt(target), []);
  // Only root is mapped in the test's user namespace, so only a chown to root can be shown here;
  // the chown to an image's user is tested in a VM (test/api/volumes-images.test.ts).
  await mount([[Tag.PATH, target], [Tag.FSTYPE, "tmpfs"], [Tag.SOURCE, "tmpfs"], [Tag.USER, "0:0"]]);
  assert.equal((await mountsAt(target)).length, 1);
  assert.equal((await conn.exec(["stat", "-c", "%u:%g", target])).stdout.toString(), "0:0\n");
});
