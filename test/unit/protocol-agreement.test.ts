/**
 * The guest agent's C header and the host's protocol module describe one wire format twice
 * (guest/agent/proto.h, src/agent/protocol.ts). Nothing links them, so this test reads the C
 * (#define and enum values) and compares: every message type, tag, flag, frame limit, the DATA chunk
 * size, the main log path and IDENTITY's limits. A number changed on one side only fails here, not in a guest.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import * as P from "../../src/agent/protocol.js";

const agentDir = fileURLToPath(new URL("../../guest/agent/", import.meta.url));

type CValue = number | string;

/** The #define and enum constants of a C header: integers (u suffixes, * and parentheses) and string literals. */
function parseCConstants(src: string): { defines: Map<string, CValue>; enums: Map<string, Map<string, number>> } {
  const text = src.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
  const defines = new Map<string, CValue>();
  for (const m of text.matchAll(/^#define\s+(\w+)\s+(.+?)\s*$/gm)) {
    const v = cValue(m[2]!);
    if (v !== null) defines.set(m[1]!, v);
  }
  const enums = new Map<string, Map<string, number>>();
  for (const m of text.matchAll(/enum\s+(\w+)\s*\{([^}]*)\}/g)) {
    const members = new Map<string, number>();
    for (const item of m[2]!.split(",").map((s) => s.trim()).filter(Boolean)) {
      const [name, expr] = item.split("=").map((s) => s.trim());
      const v = expr === undefined ? null : cValue(expr);
      if (typeof v !== "number") throw new Error(`enum ${m[1]}: cannot read ${item}`);
      members.set(name!, v);
    }
    enums.set(m[1]!, members);
  }
  return { defines, enums };
}

function cValue(expr: string): CValue | null {
  const str = /^"((?:[^"\\]|\\.)*)"$/.exec(expr);
  if (str) return str[1]!;
  // Integer arithmetic only: literals (hex or decimal, u/l suffixes), * + - << and parentheses.
  const js = expr.replace(/\b(0x[0-9a-f]+|\d+)[ul]*\b/gi, "$1");
  if (!/^(?:\s|0x[0-9a-f]+|\d+|[()*+-]|<<)+$/i.test(js)) return null;
  const v = Function(`"use strict"; return (${js});`)() as unknown;
  return typeof v === "number" && Number.isInteger(v) ? v : null;
}

const proto = parseCConstants(readFileSync(`${agentDir}proto.h`, "utf8"));
const files = parseCConstants(readFileSync(`${agentDir}files.h`, "utf8"));

function define(name: string, from = proto): CValue {
  const v = from.defines.get(name);
  assert.notEqual(v, undefined, `#define ${name} is missing from the C header`);
  return v!;
}

function enumOf(name: string): Map<string, number> {
  const e = proto.enums.get(name);
  assert.ok(e, `enum ${name} is missing from proto.h`);
  return e;
}

/** Both sides list the same names with the same values. */
function assertSame(what: string, ts: Record<string, number>, c: Map<string, number>, cName: (tsName: string) => string): void {
  const tsAsC = new Map(Object.entries(ts).map(([k, v]) => [cName(k), v]));
  assert.deepEqual([...c.entries()].sort(), [...tsAsC.entries()].sort(), `${what}: proto.h and protocol.ts disagree`);
}

test("the C header parser reads defines, arithmetic, strings and enums", () => {
  const p = parseCConstants('#define A (4u * 1024u)\n#define B "x/y"\n#define C 0x7fu /* c */\n#define F(x) x\nenum e { E1 = 0x01, E2 = 3, };');
  assert.equal(p.defines.get("A"), 4096);
  assert.equal(p.defines.get("B"), "x/y");
  assert.equal(p.defines.get("C"), 0x7f);
  assert.equal(p.defines.has("F(x)"), false);
  assert.deepEqual([...p.enums.get("e")!], [["E1", 1], ["E2", 3]]);
});

test("message types agree", () => {
  assertSame("message types", P.MsgType, enumOf("hf_type"), (k) => `HF_${k}`);
});

test("field tags agree", () => {
  assertSame("tags", P.Tag, enumOf("hf_tag"), (k) => `T_${k}`);
});

test("flags agree (frame END, WRITE, DELETE, MKDIR, SHUTDOWN, EXEC, READDIR, RENAME)", () => {
  assert.equal(define("HF_FLAG_END"), P.FLAG_END);
  const groups: Array<[string, Record<string, number>]> = [
    ["WRITE", P.WriteFlags],
    ["DELETE", P.DeleteFlags],
    ["MKDIR", P.MkdirFlags],
    ["SHUTDOWN", P.ShutdownFlags],
    ["EXEC", P.ExecFlags],
    ["READDIR", P.ReaddirFlags],
    ["RENAME", P.RenameFlags],
    ["MOUNT", P.MountFlags],
  ];
  for (const [group, ts] of groups) {
    const c = new Map([...proto.defines].filter(([k, v]) => k.startsWith(`HF_${group}_`) && typeof v === "number") as Array<[string, number]>);
    assertSame(`${group} flags`, ts, c, (k) => `HF_${group}_${k}`);
  }
});

test("version, frame limits, DATA chunk and names agree", () => {
  assert.equal(define("HF_PROTOCOL_VERSION"), P.PROTOCOL_VERSION);
  assert.equal(define("HF_HEADER_SIZE"), P.HEADER_SIZE);
  assert.equal(define("HF_MAX_PAYLOAD"), P.MAX_PAYLOAD);
  // The guest answers a READ in chunks of READ_CHUNK; the host writes in DATA_CHUNK: one size both ways.
  assert.equal(define("READ_CHUNK", files), P.DATA_CHUNK);
  assert.ok(P.DATA_CHUNK <= P.MAX_PAYLOAD, "a DATA chunk fits in one frame");
  assert.equal(define("HF_SERIAL_NAME"), P.SERIAL_PORT_NAME);
  assert.equal(define("HF_DEFAULT_LOG_PATH"), P.DEFAULT_LOG_PATH);
  assert.equal(define("HF_ENTROPY_MIN"), P.IdentityLimits.ENTROPY_MIN);
  assert.equal(define("HF_ENTROPY_MAX"), P.IdentityLimits.ENTROPY_MAX);
  assert.equal(define("HF_HOSTNAME_MAX"), P.IdentityLimits.HOSTNAME_MAX);
  assert.equal(define("HF_ENTRY_HEADER"), P.ENTRY_HEADER);
  assert.equal(define("HF_FSTYPE_MAX"), P.MountLimits.FSTYPE_MAX);
  assert.equal(define("HF_SERIAL_MAX"), P.MountLimits.SERIAL_MAX);
});
