/**
 * The Firecracker driver against the shared VMM driver conformance suite (driver-suite.ts): with
 * the real Firecracker when its binary and a usable /dev/kvm exist (else skipped, the reason
 * printed), and always with the spec-validating stand-in (test/vmm/firecracker-standin/), for the
 * cases a process standing in for a VM can honour. The driver's own cases (the exact request
 * sequence, error paths, snapshot request shapes) are in firecracker-driver.test.ts.
 */
import { after } from "node:test";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { rawCopies } from "../../src/vmm/disks.js";
import { FirecrackerDriver } from "../../src/vmm/firecracker/driver.js";
import { guestAssetsIn } from "../../src/vmm/registry.js";
import { runDriverSuite } from "./driver-suite.js";
import { dataDir, removeStandinLeftovers, standinWrapper, whyNoRealFirecracker } from "./firecracker-helpers.js";

const assets = guestAssetsIn(dataDir);
const realBin = process.env.HYPERFLEET_FIRECRACKER_BIN ?? "firecracker";
const noReal = whyNoRealFirecracker(realBin);
if (noReal) process.stdout.write(`# firecracker conformance against the real Firecracker skipped: ${noReal}\n`);

runDriverSuite({
  name: "firecracker",
  kind: "firecracker",
  newDriver: () => Promise.resolve(new FirecrackerDriver({ binary: realBin })),
  newDisk: (base, runDir) => rawCopies.rootDisk(base, runDir),
  cloneDisk: (frozen, runDir) => rawCopies.cloneDisk(frozen, runDir),
  assets,
  memoryAlwaysInFile: true,
  skip: noReal,
});

const wrapper = standinWrapper();
// The stand-in's guest is an hf-agent on the host's file system: the file cases write here, not in /root.
const guestDir = mkdtempSync(join("/var/tmp", "hf-fcg-"));
after(() => {
  rmSync(wrapper.dir, { recursive: true, force: true });
  rmSync(guestDir, { recursive: true, force: true });
});

runDriverSuite({
  name: "firecracker (stand-in)",
  kind: "firecracker",
  newDriver: () => Promise.resolve(new FirecrackerDriver({ binary: wrapper.bin })),
  newDisk: (base, runDir) => rawCopies.rootDisk(base, runDir),
  cloneDisk: (frozen, runDir) => rawCopies.cloneDisk(frozen, runDir),
  assets,
  memoryAlwaysInFile: true,
  guestDir,
  cannot: {
    hostname: "the stand-in boots no kernel: its guest does not read the kernel command line",
    snapshots: "the stand-in carries no guest memory or disk state across a snapshot (a fresh hf-agent per restore); its snapshot requests are checked in firecracker-driver.test.ts",
  },
  afterVmm: removeStandinLeftovers,
});
