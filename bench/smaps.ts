/**
 * Where a QEMU process's PSS goes, from /proc/<pid>/smaps (pure: the text in, KiB per part out).
 * The parts are what a clone's memory is made of under TCG (docs/snapshots.md, "Costs"): the TCG
 * translation buffer (the only anonymous rwx mapping: `-accel tcg,tb-size`), the guest RAM mapped
 * from the snapshot's memory file (its private part is what the guest wrote since the restore),
 * QEMU's own anonymous memory (heap, malloc arenas, stacks, TCG tables), and the mapped binaries
 * (QEMU and its libraries: mostly shared, plus their relocated data).
 */
export interface PssParts {
  tcgCode: number;
  guestRam: number;
  /** Of guestRam: pages the clone wrote (copy-on-write copies, its own). */
  guestRamPrivate: number;
  anon: number;
  binaries: number;
  total: number;
}

const HEADER = /^[0-9a-f]+-[0-9a-f]+ (\S+) \S+ \S+ \S+\s*(.*)$/;

export function pssParts(smaps: string, guestRamFile: string): PssParts {
  const out: PssParts = { tcgCode: 0, guestRam: 0, guestRamPrivate: 0, anon: 0, binaries: 0, total: 0 };
  let part: "tcgCode" | "guestRam" | "anon" | "binaries" = "anon";
  for (const line of smaps.split("\n")) {
    const h = HEADER.exec(line);
    if (h) {
      const [, perms, name] = h as unknown as [string, string, string];
      if (name === guestRamFile) part = "guestRam";
      else if (name === "" && perms.startsWith("rwx")) part = "tcgCode";
      else if (name === "" || name.startsWith("[")) part = "anon";
      else part = "binaries";
      continue;
    }
    const pss = /^Pss:\s+(\d+) kB/.exec(line);
    if (pss) {
      out[part] += Number(pss[1]);
      out.total += Number(pss[1]);
      continue;
    }
    const priv = /^Private_Dirty:\s+(\d+) kB/.exec(line);
    if (priv && part === "guestRam") out.guestRamPrivate += Number(priv[1]);
  }
  return out;
}
