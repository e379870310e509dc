/** The CLI's pure pieces: argument splitting for run/exec, memory sizes, -p specs, cp's ID:/path. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { parse } from "../../src/cli/args.js";
import { memoryMib, portSpec, serviceSpec } from "../../src/cli/commands/run.js";
import { remoteSpec } from "../../src/cli/commands/cp.js";
import { isHyperfleetError } from "../../src/core/errors.js";

const usage = (fn: () => unknown) => assert.throws(fn, (e: unknown) => isHyperfleetError(e, "INVALID_ARGUMENT") && e.details?.usage === true);

test("run and exec: options end at the guest command, whose own flags stay its own", () => {
  const opts = { env: { type: "string", short: "e", multiple: true }, interactive: { type: "boolean", short: "i" }, name: { type: "string" } } as const;
  const p = parse(["-i", "-e", "A=1", "--name=x", "web", "sh", "-c", "ls -la", "--help"], opts, { stopAtCommand: 1 });
  assert.deepEqual(p.positionals, ["web", "sh", "-c", "ls -la", "--help"]);
  assert.deepEqual(p.values.env, ["A=1"]);
  assert.equal(p.values.interactive, true);
  assert.equal(p.help, false, "--help after the command is the command's");
  assert.deepEqual(parse(["--name", "a", "--", "-x"], opts, { stopAtCommand: 1 }).positionals, ["-x"]);
  assert.deepEqual(parse(["-e", "A=1", "echo", "-e", "hi"], opts, { stopAtCommand: 0 }).positionals, ["echo", "-e", "hi"]);
  assert.equal(parse(["--help"], opts).help, true);
  usage(() => parse(["--nope"], opts));
  usage(() => parse(["--name"], opts));
});

test("--memory sizes are MiB", () => {
  assert.equal(memoryMib("512"), 512);
  assert.equal(memoryMib("512m"), 512);
  assert.equal(memoryMib("512MiB"), 512);
  assert.equal(memoryMib("1g"), 1024);
  assert.equal(memoryMib("2G"), 2048);
  usage(() => memoryMib("lots"));
  usage(() => memoryMib("1.5g"));
});

test("-p takes Docker's [IP:]HOST:GUEST[/proto]", () => {
  assert.deepEqual(portSpec("8080:80"), { guest_port: 80, host_port: 8080 });
  assert.deepEqual(portSpec("127.0.0.1:8080:80/udp"), { guest_port: 80, host_port: 8080, host_ip: "127.0.0.1", protocol: "udp" });
  assert.deepEqual(portSpec(":80"), { guest_port: 80 });
  usage(() => portSpec("80"));
  usage(() => portSpec("8080:0"));
  usage(() => portSpec("8080:70000"));
});

test("cp: ID:/path or NAME:/path is the machine's side; local paths are not", () => {
  assert.deepEqual(remoteSpec("web:/tmp/a"), { ref: "web", path: "/tmp/a" });
  assert.deepEqual(remoteSpec("vm_01J9Z6Y8W2V4T0S5R3Q1P7N9M8:/a:b"), { ref: "vm_01J9Z6Y8W2V4T0S5R3Q1P7N9M8", path: "/a:b" });
  assert.equal(remoteSpec("./a:b"), null);
  assert.equal(remoteSpec("/abs/a:b"), null);
  assert.equal(remoteSpec("plain.txt"), null);
  usage(() => remoteSpec("web:relative"));
});

test("--service PORT[:public|private]: private by default; bad ports and visibilities are usage errors", () => {
  assert.deepEqual(serviceSpec("8080"), { port: 8080, visibility: "private" });
  assert.deepEqual(serviceSpec("80:public"), { port: 80, visibility: "public" });
  for (const bad of ["0", "65536", "80:open", "x", "80:", ":80"]) assert.throws(() => serviceSpec(bad), /--service/, bad);
});
