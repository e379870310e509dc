/** HYPERFLEET_JAILER_* (src/config/jailer.ts): defaults, values and the problems reported. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { loadConfig } from "../../src/config/index.js";
import { isHyperfleetError } from "../../src/core/errors.js";

const facts = { memTotalMib: 8192, cpus: 2 };

test("jailer defaults: off, /usr/local/bin/jailer, /srv/jailer, parent cgroup hyperfleet, uids 900000..909999", () => {
  const c = loadConfig({}, facts).unwrap();
  assert.deepEqual(c.jailer, {
    enabled: false, binary: "/usr/local/bin/jailer", chrootBase: "/srv/jailer", cgroupParent: "hyperfleet",
    uidBase: 900_000, uidCount: 10_000, newPidNs: false,
  });
});

test("jailer settings are read", () => {
  const c = loadConfig({
    HYPERFLEET_JAILER: "on", HYPERFLEET_JAILER_BINARY: "/opt/fc/jailer", HYPERFLEET_JAILER_CHROOT_BASE: "/var/jail",
    HYPERFLEET_JAILER_CGROUP_PARENT: "machines/hf", HYPERFLEET_JAILER_UID_BASE: "50000", HYPERFLEET_JAILER_UID_COUNT: "100",
    HYPERFLEET_JAILER_NEW_PID_NS: "yes",
  }, facts).unwrap();
  assert.deepEqual(c.jailer, { enabled: true, binary: "/opt/fc/jailer", chrootBase: "/var/jail", cgroupParent: "machines/hf", uidBase: 50_000, uidCount: 100, newPidNs: true });
});

test("bad jailer settings are CONFIG_INVALID naming each variable", () => {
  const r = loadConfig({ HYPERFLEET_JAILER: "maybe", HYPERFLEET_JAILER_CGROUP_PARENT: "../up", HYPERFLEET_JAILER_UID_BASE: "0", HYPERFLEET_JAILER_UID_COUNT: "x" }, facts);
  assert.equal(r.ok, false);
  if (r.ok) return;
  const e = r.error;
  assert.ok(isHyperfleetError(e) && e.code === "CONFIG_INVALID");
  for (const v of ["HYPERFLEET_JAILER ", "HYPERFLEET_JAILER_CGROUP_PARENT", "HYPERFLEET_JAILER_UID_BASE", "HYPERFLEET_JAILER_UID_COUNT"]) assert.ok(e.message.includes(v), `${v} in ${e.message}`);
});
