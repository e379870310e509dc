/** Admission arithmetic (pure) and the default limits derived from a host. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { checkAdmission, checkFitsHost, NO_USAGE, type Capacity } from "../../src/core/capacity.js";
import { defaultCapacity, DEFAULT_VM_OVERHEAD_MIB } from "../../src/config/capacity.js";
import { loadConfig } from "../../src/config/config.js";

const CAP: Capacity = { maxMemoryMib: 20480, maxVcpus: 8, maxVcpusPerMachine: 2, vmOverheadMib: 160 };

test("a machine fits exactly up to the limit, overhead included", () => {
  // 2 machines holding 2*(8000+160) = 16320; 20480 - 16320 = 4160 free = 4000 + 160.
  const used = { machines: 2, memSizeMib: 16000, vcpus: 2 };
  assert.equal(checkAdmission({ vcpuCount: 1, memSizeMib: 4000 }, used, CAP), null);
  const e = checkAdmission({ vcpuCount: 1, memSizeMib: 4001 }, used, CAP);
  assert.equal(e?.code, "INSUFFICIENT_CAPACITY");
  assert.equal(e?.message, "starting this machine needs 4161 MiB (4001 guest + 160 VMM overhead); 4160 of 20480 MiB are free (HYPERFLEET_MAX_MEMORY_MIB); stop or delete machines, or retry later");
});

test("the issue's example: 16 GiB when 2048 MiB are free", () => {
  const used = { machines: 1, memSizeMib: 18272, vcpus: 1 };
  const e = checkAdmission({ vcpuCount: 1, memSizeMib: 16384 }, used, CAP);
  assert.match(e?.message ?? "", /^starting this machine needs 16544 MiB \(16384 guest \+ 160 VMM overhead\); 2048 of 20480 MiB are free/);
});

test("vCPUs: the total budget and the per-machine cap", () => {
  const e = checkAdmission({ vcpuCount: 2, memSizeMib: 128 }, { machines: 7, memSizeMib: 896, vcpus: 7 }, CAP);
  assert.equal(e?.message, "starting this machine needs 2 vCPUs; 1 of 8 are free (HYPERFLEET_MAX_VCPUS); stop or delete machines, or retry later");
  assert.equal(checkAdmission({ vcpuCount: 1, memSizeMib: 128 }, { machines: 7, memSizeMib: 896, vcpus: 7 }, CAP), null);
  assert.match(checkAdmission({ vcpuCount: 3, memSizeMib: 128 }, NO_USAGE, CAP)?.message ?? "", /at most 2 \(HYPERFLEET_MAX_VCPUS_PER_MACHINE\)/);
});

test("over-full hosts (limits lowered after a restart) report 0 free, not a negative number", () => {
  const e = checkAdmission({ vcpuCount: 1, memSizeMib: 128 }, { machines: 3, memSizeMib: 30000, vcpus: 12 }, CAP);
  assert.match(e?.message ?? "", /; 0 of 20480 MiB are free/);
});

test("a machine that could never fit is INVALID_ARGUMENT with the field", () => {
  assert.equal(checkFitsHost({ vcpuCount: 1, memSizeMib: 20320 }, CAP), null);
  const mem = checkFitsHost({ vcpuCount: 1, memSizeMib: 20321 }, CAP);
  assert.equal(mem?.code, "INVALID_ARGUMENT");
  assert.equal(mem?.details?.field, "mem_size_mib");
  assert.match(mem?.message ?? "", /cannot fit even on an idle host/);
  assert.equal(checkFitsHost({ vcpuCount: 3, memSizeMib: 128 }, CAP)?.details?.field, "vcpu_count");
});

test("defaults: memory leaves max(1 GiB, 1/8) to the host; vCPUs 4x the CPUs, one machine at most all of them", () => {
  assert.deepEqual(defaultCapacity({ memTotalMib: 24104, cpus: 2 }), { maxMemoryMib: 24104 - 3013, maxVcpus: 8, maxVcpusPerMachine: 2, vmOverheadMib: DEFAULT_VM_OVERHEAD_MIB });
  assert.equal(defaultCapacity({ memTotalMib: 4096, cpus: 1 }).maxMemoryMib, 3072);
  const c = loadConfig({}, { memTotalMib: 24104, cpus: 2 }).unwrap();
  assert.deepEqual(c.capacity, defaultCapacity({ memTotalMib: 24104, cpus: 2 }));
});

test("the variables override the defaults and are validated", () => {
  const c = loadConfig({ HYPERFLEET_MAX_MEMORY_MIB: "600", HYPERFLEET_MAX_VCPUS: "3", HYPERFLEET_MAX_VCPUS_PER_MACHINE: "1", HYPERFLEET_VM_OVERHEAD_MIB: "0" }).unwrap();
  assert.deepEqual(c.capacity, { maxMemoryMib: 600, maxVcpus: 3, maxVcpusPerMachine: 1, vmOverheadMib: 0 });
  const r = loadConfig({ HYPERFLEET_MAX_MEMORY_MIB: "lots", HYPERFLEET_MAX_VCPUS: "0" });
  assert.equal(r.ok, false);
  if (!r.ok) {
    assert.match(r.error.message, /HYPERFLEET_MAX_MEMORY_MIB must be a whole number of MiB, got 'lots'/);
    assert.match(r.error.message, /HYPERFLEET_MAX_VCPUS must be between 1 and/);
  }
});
