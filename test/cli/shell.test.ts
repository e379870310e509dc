/**
 * The interactive shell end to end, driven through tmux like a person at a terminal: the client
 * (the real `hyperfleet shell` executable, bin/hyperfleet.js, on src/cli/exec-session.ts) in a tmux pane on its own tmux
 * server (-L hft-<random>), a real daemon process and a real VM. A prompt appears, arithmetic
 * works, Ctrl-C interrupts a guest `sleep` (status 130), a resize of the pane changes `stty size` in
 * the guest, and Ctrl-D ends the session with the shell's exit status. Cleanup: our tmux server,
 * the daemon and its VM, by name of our own socket and by pid.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, test } from "node:test";
import { endDaemons, KEY, spawnDaemon, vmSkipReason, type ChildDaemon } from "../api/helpers.js";

const REPO = resolve(import.meta.dirname, "../..");
const hasTmux = (() => {
  try {
    execFileSync("tmux", ["-V"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();
const skip = vmSkipReason() ?? (hasTmux ? null : "tmux is not installed (scripts/setup.sh installs it)");
const server = `hft-${randomBytes(4).toString("hex")}`;
let d: ChildDaemon | undefined;
let dataDir = "";
let id = "";
let tmuxStarted = false;

const tmux = (...args: string[]) => execFileSync("tmux", ["-L", server, ...args], { encoding: "utf8" });
const pane = () => tmux("capture-pane", "-p", "-t", "s");
const keys = (...k: string[]) => tmux("send-keys", "-t", "s", ...k);

async function see(re: RegExp, what: string, timeoutMs = 20_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = pane();
    if (re.test(text)) return text;
    if (Date.now() > deadline) throw new Error(`${what} did not appear in ${timeoutMs} ms; the pane shows:\n${text}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

before(async () => {
  if (skip) return;
  dataDir = await mkdtemp(join(tmpdir(), "hf-shell-"));
  d = await spawnDaemon(dataDir);
  const c = await d.fetch("POST", "/machines", { name: "shell", vcpu_count: 1, mem_size_mib: 256, start: true });
  assert.equal(c.status, 201, JSON.stringify(c.body));
  id = c.body.id as string;
  for (let i = 0; ; i++) {
    const w = await d.fetch("GET", `/machines/${id}/wait?status=running&timeout=30`);
    if (w.status === 200) break;
    assert.ok(i < 4 && w.status === 408, JSON.stringify(w.body));
  }
});
after(async () => {
  if (tmuxStarted) {
    try {
      tmux("kill-server");
    } catch {
      // already gone
    }
    // tmux leaves its socket file behind after kill-server.
    rmSync(join(`/tmp/tmux-${process.getuid!()}`, server), { force: true });
  }
  if (d) await endDaemons([d], dataDir);
  // A daemon that never started leaves its data dir behind otherwise.
  else if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

test("the interactive shell: prompt, 6*7, Ctrl-C (130), resize, Ctrl-D with the shell's status", { skip: skip ?? false, timeout: 180_000 }, async () => {
  const client = `cd ${REPO} && HYPERFLEET_API_KEY=${KEY} HYPERFLEET_URL=${d!.url} node bin/hyperfleet.js shell ${id}; echo STATUS=$?; sleep 600`;
  tmux("-f", "/dev/null", "new-session", "-d", "-s", "s", "-x", "100", "-y", "30", client);
  tmuxStarted = true;
  tmux("set-option", "-t", "s", "status", "off");
  tmux("set-option", "-t", "s", "window-size", "manual");

  // capture-pane drops the space after the prompt.
  await see(/^\/ [#$]\s*$/m, "the guest shell's prompt", 60_000);
  keys("stty size", "Enter");
  await see(/^30 100\s*$/m, "the initial size 30x100");

  keys("echo $((6*7))", "Enter");
  await see(/^42\s*$/m, "42");

  keys("sleep 30", "Enter");
  await see(/sleep 30\s*$/m, "the sleep command echoed");
  await new Promise((r) => setTimeout(r, 500));
  const t0 = Date.now();
  keys("C-c");
  keys("echo status=$?", "Enter");
  await see(/^status=130\s*$/m, "status=130 after Ctrl-C");
  assert.ok(Date.now() - t0 < 20_000, "Ctrl-C did not interrupt the sleep");

  tmux("resize-window", "-t", "s", "-x", "120", "-y", "40");
  await new Promise((r) => setTimeout(r, 300));
  keys("clear; stty size", "Enter");
  await see(/^40 120\s*$/m, "the new size 40x120");

  keys("(exit 5)", "Enter");
  await new Promise((r) => setTimeout(r, 300));
  keys("C-d");
  await see(/^STATUS=5\s*$/m, "the session's end with the shell's status 5");
});
